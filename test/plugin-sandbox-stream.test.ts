// The canvas sheet's stream follower against the real sandbox sequencer:
// an intent created with the official client, the rendezvous key rebuilt by
// the plugin from the client secret, amount and currency, and the sandbox
// wallet scanning, declining and paying. Node 20 has no global WebSocket,
// so the test lends `RpcStream` the `ws` package's client, which has the
// same browser API.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { WebSocket as NodeWebSocket } from 'ws';
import { paymentIntents } from '@code-wallet/client';
import { followIntent, type StreamHint } from '../plugin/sheet/intent-stream.js';
import { deriveRendezvous } from '../plugin/sheet/rendezvous.js';
import { startSandbox } from '../server/sandbox/index.js';

type Sandbox = Awaited<ReturnType<typeof startSandbox>>;

const destination = 'E8otxw1CVX9bfyddKu3ZB3BVLa4VVF9J7CTPdnUwT9jR';
let sandbox: Sandbox;
let streamUrl: string;
const globalScope = globalThis as { WebSocket?: unknown };
const originalWebSocket = globalScope.WebSocket;

async function waitFor<T>(read: () => T, accept: (value: T) => boolean, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = read();
  while (!accept(last)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((resolveWait) => setTimeout(resolveWait, 25));
    last = read();
  }
  return last;
}

/** Creates an intent in the sandbox and opens the plugin's stream for it. */
async function followNewIntent(idempotencyKey: string) {
  const amount = 0.25;
  const currency = 'usd';
  const created = await paymentIntents.create({ endpoint: sandbox.endpoint, destination, amount, currency, idempotencyKey } as never);
  const { clientSecret, id } = created as unknown as { clientSecret: string; id: string };

  const rendezvous = await deriveRendezvous({ clientSecret, amount, currency });
  const hints: StreamHint[] = [];
  const ends: string[] = [];
  const close = await followIntent(streamUrl, rendezvous, {
    onHint: (hint) => hints.push(hint),
    onEnd: (reason) => ends.push(reason),
  });
  return { intentId: id, rendezvous, hints, ends, close };
}

beforeAll(async () => {
  globalScope.WebSocket = NodeWebSocket;
  sandbox = await startSandbox({ port: 0, dataFile: ':memory:', logger: pino({ level: 'silent' }) });
  streamUrl = `${sandbox.endpoint.replace(/^http/, 'ws')}/ws`;
});

afterAll(async () => {
  await sandbox?.close();
  globalScope.WebSocket = originalWebSocket;
});

describe('followIntent against the sandbox', () => {
  it('derives the intent id of the official client', async () => {
    const followed = await followNewIntent('plugin-stream-id');
    followed.close();

    expect(followed.rendezvous.intentId).toBe(followed.intentId);
  });

  it('reports scanned and submitted', async () => {
    const followed = await followNewIntent('plugin-stream-pay');

    sandbox.context.scan(followed.intentId);
    await waitFor(() => followed.hints, (hints) => hints.includes('codeScanned'), 'codeScanned');
    sandbox.context.pay(followed.intentId);
    await waitFor(() => followed.hints, (hints) => hints.includes('intentSubmitted'), 'intentSubmitted');
    followed.close();

    expect(followed.hints.indexOf('codeScanned')).toBeLessThan(followed.hints.indexOf('intentSubmitted'));
    expect(followed.ends).toEqual([]);
  });

  it('reports a decline', async () => {
    const followed = await followNewIntent('plugin-stream-decline');

    sandbox.context.reject(followed.intentId);
    await waitFor(() => followed.hints, (hints) => hints.includes('clientRejectedPayment'), 'clientRejectedPayment');
    followed.close();

    expect(followed.hints).not.toContain('intentSubmitted');
    expect(followed.ends).toEqual([]);
  });
});
