// Sequencer rejections and outages: each gives its error code, leaves nothing
// stored or open, and a retry after the outage creates the purchase.

import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { CodePayError, createCodePay, type CodePay, type CodePayOptions } from '../server/index.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import {
  GrantRecorder,
  kitOptions,
  makeTempDir,
  randomAddress,
  sandboxStats,
  setFaults,
  startTestSandbox,
} from './kit-helpers.js';

let sandbox: SandboxHandle;
let temp: { dir: string; remove: () => void };
let counter = 0;
const kits: CodePay[] = [];

async function startKit(overrides: Partial<CodePayOptions> = {}, destination = randomAddress()): Promise<CodePay> {
  counter += 1;
  const kit = await createCodePay(
    kitOptions({
      sandbox,
      dbFile: join(temp.dir, `outage-${counter}.db`),
      destination,
      grants: new GrantRecorder(),
      overrides: { gameId: `outage-${counter}`, ...overrides },
    }),
  );
  kits.push(kit);
  return kit;
}

async function caught(promise: Promise<unknown>): Promise<CodePayError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(CodePayError);
  return error as CodePayError;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox(temp.dir);
});

afterEach(async () => {
  await setFaults(sandbox, { clear: true });
  await Promise.all(kits.splice(0).map((kit) => kit.close()));
});

afterAll(async () => {
  await sandbox.close();
  temp.remove();
});

describe('SendMessage outages', () => {
  it('answers sequencer_unavailable and stores nothing', async () => {
    const kit = await startKit();
    await setFaults(sandbox, { sendMessage: { fail: 1, failWith: 'unavailable' } });

    const error = await caught(kit.createPurchase('alice', { itemId: 'sword' }));

    expect(error.code).toBe('sequencer_unavailable');
    expect(await kit.listPurchases('alice')).toEqual([]);
    expect(await kit.store.listOpen(null, 10)).toEqual([]);
  });

  it('creates the purchase on a retry', async () => {
    const kit = await startKit();
    await setFaults(sandbox, { sendMessage: { fail: 1, failWith: 'unavailable' } });
    await caught(kit.createPurchase('alice', { itemId: 'sword' }));

    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });

    expect(purchase.state).toBe('pending');
    expect(sandbox.context.getIntent(purchase.intentId)).toBeDefined();
  });

  it('answers sequencer_unavailable for a closed port', async () => {
    const port = await closedPort();
    const kit = await startKit({ sequencer: { endpoint: `http://127.0.0.1:${port}/v1`, publicKey: sandbox.publicKey, timeoutMs: 2_000 } });

    const error = await caught(kit.createPurchase('alice', { itemId: 'sword' }));

    expect(error.code).toBe('sequencer_unavailable');
    expect(await kit.listPurchases('alice')).toEqual([]);
  });

  it('answers sequencer_unavailable for a timeout', async () => {
    const kit = await startKit({ sequencer: { endpoint: sandbox.endpoint, publicKey: sandbox.publicKey, timeoutMs: 100 } });
    await setFaults(sandbox, { sendMessage: { delayMs: 1_000 } });

    const error = await caught(kit.createPurchase('alice', { itemId: 'sword' }));

    expect(error.code).toBe('sequencer_unavailable');
    expect(await kit.listPurchases('alice')).toEqual([]);
  });
});

describe('SendMessage rejections', () => {
  it('answers sequencer_rejected with the sequencer\'s message', async () => {
    const gameId = 'outage-shared-game';
    const first = await startKit({ gameId });
    await first.createPurchase('alice', { itemId: 'sword' });

    // Another database with the same keys but another destination: the same intent id with other fields.
    const second = await startKit({ gameId });
    const error = await caught(second.createPurchase('alice', { itemId: 'sword' }));

    expect(error.code).toBe('sequencer_rejected');
    expect(error.message).toMatch(/destination/i);
    expect(await second.listPurchases('alice')).toEqual([]);
    expect(await second.store.listOpen(null, 10)).toEqual([]);
  });
});

describe('GetStatus outages', () => {
  it('fails revalidate and leaves the purchase as it was', async () => {
    const kit = await startKit({ polling: { intervalMs: 60_000, firstCheckAfterMs: 60_000 } });
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });
    await setFaults(sandbox, { getStatus: { fail: 'always', failWith: 'unavailable' } });

    const error = await caught(kit.revalidate('alice', purchase.id));

    expect(error.code).toBe('sequencer_unavailable');
    expect((await kit.store.getById(purchase.id))?.state).toBe('pending');
  });
});

describe('webhook registration', () => {
  it('accepts already_registered on a retry', async () => {
    const gameId = 'outage-webhook-retry';
    const destination = randomAddress();
    const webhookUrl = 'http://127.0.0.1:9/code-pay/webhook';
    const first = await startKit({ gameId, webhookUrl }, destination);
    const original = await first.createPurchase('alice', { itemId: 'sword' });

    // Another database with the same keys and destination: as if the kit had crashed after SendMessage.
    const second = await startKit({ gameId, webhookUrl }, destination);
    sandbox.resetStats();
    const retry = await second.createPurchase('alice', { itemId: 'sword' });

    expect(retry.intentId).toBe(original.intentId);
    expect(retry.state).toBe('pending');
    const stats = await sandboxStats(sandbox);
    expect(stats.rpc['Messaging.SendMessage']).toBe(1);
    expect(stats.rpc['MicroPayment.RegisterWebhook']).toBe(1);
    expect(sandbox.context.getIntent(original.intentId)?.webhookUrl).toBe(webhookUrl);
  });
});
