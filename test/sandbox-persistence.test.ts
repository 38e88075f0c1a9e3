// A restart with the same data file keeps intents, the ledger, the signing
// key and pending webhook deliveries.
import { paymentIntents } from '@code-wallet/client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IN_MEMORY_DATA_FILE, type SandboxHandle } from '../server/sandbox/index.js';
import { control, makeTempDir, randomAddress, startTestSandbox, WebhookReceiver } from './sandbox-helpers.js';

let temp: ReturnType<typeof makeTempDir>;
let dataFile: string;
const open: SandboxHandle[] = [];
const receivers: WebhookReceiver[] = [];

beforeEach(() => {
  temp = makeTempDir();
  dataFile = `${temp.dir}/nested/sandbox.db`;
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((sandbox) => sandbox.close()));
  await Promise.all(receivers.splice(0).map((receiver) => receiver.close()));
  temp.remove();
});

async function start(options: { timeScale?: number; file?: string } = {}): Promise<SandboxHandle> {
  const sandbox = await startTestSandbox({ dataFile: options.file ?? dataFile, timeScale: options.timeScale ?? 0.001 });
  open.push(sandbox);
  return sandbox;
}

describe('sandbox restart', () => {
  it('keeps intents, the ledger and the signing key', async () => {
    const first = await start();
    const destination = randomAddress();
    const options = { destination, amount: 0.4, currency: 'usd' as const, mode: 'payment' as const, idempotencyKey: 'restart-1' };
    const paid = await paymentIntents.create({ ...options, endpoint: first.endpoint });
    const pending = await paymentIntents.create({ ...options, idempotencyKey: 'restart-2', endpoint: first.endpoint });
    await control(first, 'POST', `/intents/${paid.id}/pay`);
    await control(first, 'POST', `/intents/${pending.id}/scan`);
    await first.close();

    const second = await start();

    expect(second.publicKey).toBe(first.publicKey);
    expect(second.context.getIntent(paid.id)?.status).toBe('paid');
    expect(second.context.getIntent(pending.id)?.status).toBe('scanned');
    const ledger = (await control(second, 'GET', '/ledger')).json.entries;
    expect(ledger).toHaveLength(1);
    expect(ledger[0]).toMatchObject({ intentId: paid.id, amount: 0.4, currency: 'usd', destination });
    const status = await paymentIntents.getStatus({ endpoint: second.endpoint, intent: paid.id });
    expect(status.intentSubmitted).toBe(true);
    const again = await control(second, 'POST', `/intents/${paid.id}/pay`);
    expect(again.status).toBe(409);
  });

  it('accepts a repeat after a restart without a second record', async () => {
    const first = await start();
    const options = {
      destination: randomAddress(),
      amount: 0.4,
      currency: 'usd' as const,
      mode: 'payment' as const,
      idempotencyKey: 'restart-repeat',
    };
    const created = await paymentIntents.create({ ...options, endpoint: first.endpoint });
    await first.close();

    const second = await start();
    const repeated = await paymentIntents.create({ ...options, endpoint: second.endpoint });

    expect(repeated.id).toBe(created.id);
    expect((await control(second, 'GET', '/intents')).json.total).toBe(1);
  });

  it('delivers a pending webhook after a restart', async () => {
    const receiver = await new WebhookReceiver([500]).start();
    receivers.push(receiver);
    // A time scale of 1 puts the retry a full second away, so the sandbox
    // closes with the delivery still pending.
    const first = await start({ timeScale: 1 });
    const created = await paymentIntents.create({
      endpoint: first.endpoint,
      destination: randomAddress(),
      amount: 0.4,
      currency: 'usd',
      mode: 'payment',
      idempotencyKey: 'restart-webhook',
      webhook: { url: receiver.url },
    });
    await control(first, 'POST', `/intents/${created.id}/pay`);
    await receiver.waitFor(1);
    const queued = (await control(first, 'GET', `/intents/${created.id}`)).json.webhook;
    expect(queued).toMatchObject({ state: 'pending', attempts: 1 });
    await first.close();

    const second = await start({ timeScale: 1 });
    await receiver.waitFor(2);

    expect(receiver.received).toHaveLength(2);
    expect(receiver.received[1]!.body).toBe(receiver.received[0]!.body);
    for (;;) {
      const state = (await control(second, 'GET', `/intents/${created.id}`)).json.webhook;
      if (state.state === 'delivered') {
        expect(state.attempts).toBe(2);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });

  it('keeps a registered webhook across a restart', async () => {
    const receiver = await new WebhookReceiver().start();
    receivers.push(receiver);
    const first = await start();
    const created = await paymentIntents.create({
      endpoint: first.endpoint,
      destination: randomAddress(),
      amount: 0.4,
      currency: 'usd',
      mode: 'payment',
      idempotencyKey: 'restart-registered',
      webhook: { url: receiver.url },
    });
    await first.close();

    const second = await start();
    await control(second, 'POST', `/intents/${created.id}/pay`);
    await receiver.waitFor(1);

    expect(receiver.received).toHaveLength(1);
  });

  it('keeps nothing with an in-memory data file', async () => {
    const first = await start({ file: IN_MEMORY_DATA_FILE });
    await paymentIntents.create({
      endpoint: first.endpoint,
      destination: randomAddress(),
      amount: 0.4,
      currency: 'usd',
      mode: 'payment',
      idempotencyKey: 'memory-1',
    });
    await first.close();

    const second = await start({ file: IN_MEMORY_DATA_FILE });

    expect(second.context.listIntents()).toHaveLength(0);
    expect(second.publicKey).not.toBe(first.publicKey);
  });
});

describe('sandbox options', () => {
  it('rejects a bad time scale', async () => {
    await expect(startTestSandbox({ dataFile, timeScale: 0 })).rejects.toThrow('timeScale');
  });

  it('rejects a bad port', async () => {
    await expect(startTestSandbox({ dataFile, port: 70_000 })).rejects.toThrow('port');
  });

  it('reports a port in use', async () => {
    const first = await start();
    const port = Number(new URL(first.url).port);
    await expect(startTestSandbox({ dataFile: `${temp.dir}/other.db`, port })).rejects.toThrow(`could not listen on 127.0.0.1:${port}`);
  });
});
