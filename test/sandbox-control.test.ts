// The simulated wallet and fault injection through the JSON control API.
import * as proto from '@code-wallet/rpc';
import { paymentIntents } from '@code-wallet/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxHandle, SandboxIntentEvent } from '../server/sandbox/index.js';
import {
  callRpc,
  control,
  makeTempDir,
  randomAddress,
  RendezvousSigner,
  sendMessage,
  startTestSandbox,
} from './sandbox-helpers.js';

let sandbox: SandboxHandle;
let temp: ReturnType<typeof makeTempDir>;
let keyCounter = 0;

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox({ dataFile: `${temp.dir}/sandbox.db` });
});

afterAll(async () => {
  await sandbox.close();
  temp.remove();
});

afterEach(async () => {
  await control(sandbox, 'DELETE', '/faults');
});

async function createIntent(amount = 0.25, destination = randomAddress()): Promise<string> {
  keyCounter += 1;
  const created = await paymentIntents.create({
    endpoint: sandbox.endpoint,
    destination,
    amount,
    currency: 'usd',
    mode: 'payment',
    idempotencyKey: `control-${keyCounter}`,
  });
  return created.id;
}

describe('wallet actions', () => {
  it('lists and shows intents', async () => {
    const intentId = await createIntent();

    const list = await control(sandbox, 'GET', '/intents');
    const one = await control(sandbox, 'GET', `/intents/${intentId}`);

    expect(list.status).toBe(200);
    expect(list.json.intents.map((intent: { intentId: string }) => intent.intentId)).toContain(intentId);
    expect(one.status).toBe(200);
    expect(one.json.intentId).toBe(intentId);
    expect(one.json.status).toBe('pending');
    expect(one.json.webhook).toBeNull();
  });

  it('filters intents by status', async () => {
    const paid = await createIntent();
    await control(sandbox, 'POST', `/intents/${paid}/pay`);

    const list = await control(sandbox, 'GET', '/intents?status=paid');

    expect(list.json.intents.length).toBeGreaterThan(0);
    for (const intent of list.json.intents) {
      expect(intent.status).toBe('paid');
    }
  });

  it('rejects a bad list query', async () => {
    const result = await control(sandbox, 'GET', '/intents?status=lost');
    expect(result.status).toBe(400);
    expect(result.json.error.code).toBe('invalid_request');
    expect(result.json.error.message).toContain('status');
  });

  it('returns 404 for unknown intents', async () => {
    const unknown = randomAddress();
    for (const path of [`/intents/${unknown}`, `/intents/${unknown}/scan`, `/intents/${unknown}/pay`, `/intents/${unknown}/reject`]) {
      const result = await control(sandbox, path === `/intents/${unknown}` ? 'GET' : 'POST', path);
      expect(result.status).toBe(404);
      expect(result.json.error.code).toBe('not_found');
    }
  });

  it('scans an intent', async () => {
    const intentId = await createIntent();

    const result = await control(sandbox, 'POST', `/intents/${intentId}/scan`);

    expect(result.status).toBe(200);
    expect(result.json.status).toBe('scanned');
    expect(result.json.codeScanned).toBe(true);
  });

  it('pays an intent once and records the charge', async () => {
    const destination = randomAddress();
    const intentId = await createIntent(0.35, destination);

    const paid = await control(sandbox, 'POST', `/intents/${intentId}/pay`);
    const again = await control(sandbox, 'POST', `/intents/${intentId}/pay`);
    const ledger = await control(sandbox, 'GET', '/ledger');

    expect(paid.status).toBe(200);
    expect(paid.json.status).toBe('paid');
    expect(typeof paid.json.paidAt).toBe('number');
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe('conflict');
    const charges = ledger.json.entries.filter((entry: { intentId: string }) => entry.intentId === intentId);
    expect(charges).toHaveLength(1);
    expect(charges[0]).toMatchObject({ intentId, amount: 0.35, currency: 'usd', destination });
    expect(typeof charges[0].chargedAt).toBe('number');
  });

  it('declines an intent', async () => {
    const intentId = await createIntent();

    const rejected = await control(sandbox, 'POST', `/intents/${intentId}/reject`);
    const status = await paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent: intentId });

    expect(rejected.status).toBe(200);
    expect(rejected.json.status).toBe('rejected');
    expect(status.intentSubmitted).toBe(false);
  });

  it('pays an intent after it was declined', async () => {
    const intentId = await createIntent();
    await control(sandbox, 'POST', `/intents/${intentId}/reject`);

    const paid = await control(sandbox, 'POST', `/intents/${intentId}/pay`);

    expect(paid.status).toBe(200);
    expect(paid.json.status).toBe('paid');
  });

  it('returns 409 for actions on paid intents', async () => {
    const intentId = await createIntent();
    await control(sandbox, 'POST', `/intents/${intentId}/pay`);

    const scan = await control(sandbox, 'POST', `/intents/${intentId}/scan`);
    const reject = await control(sandbox, 'POST', `/intents/${intentId}/reject`);

    expect(scan.status).toBe(409);
    expect(reject.status).toBe(409);
  });

  it('emits intent events in order', async () => {
    const events: SandboxIntentEvent[] = [];
    const unsubscribe = sandbox.context.onIntentEvent((event) => events.push(event));

    const intentId = await createIntent();
    await control(sandbox, 'POST', `/intents/${intentId}/pay`);
    unsubscribe();

    const mine = events.filter((event) => event.intent.intentId === intentId).map((event) => event.type);
    expect(mine).toEqual(['created', 'scanned', 'paid']);
  });

  it('publishes the webhook signing key', async () => {
    const result = await control(sandbox, 'GET', '/public-key');
    expect(result.json.publicKey).toBe(sandbox.publicKey);
    expect(result.json.algorithm).toBe('EdDSA');
    expect(result.json.jwk.crv).toBe('Ed25519');
  });

  it('returns 404 for unknown paths', async () => {
    const result = await control(sandbox, 'GET', '/nothing');
    expect(result.status).toBe(404);
    expect(result.json.error.code).toBe('not_found');
  });
});

describe('faults', () => {
  it.each([
    [{ getStatus: { fail: 0 } }, 'getStatus.fail'],
    [{ getStatus: { fail: 'sometimes' } }, 'getStatus.fail'],
    [{ webhook: { drop: -1 } }, 'webhook.drop'],
    [{ webhook: { explode: true } }, 'webhook'],
    [{ sendMessage: { delayMs: 'slow' } }, 'sendMessage.delayMs'],
    [{ confirm: { fail: 1 } }, 'confirm'],
    [[1, 2], '(body)'],
  ])('rejects %j with 400', async (body, field) => {
    const result = await control(sandbox, 'POST', '/faults', body);
    expect(result.status).toBe(400);
    expect(result.json.error.code).toBe('invalid_request');
    expect(result.json.error.message).toContain(field);
    const active = await control(sandbox, 'GET', '/faults');
    expect(active.json).toEqual({ webhook: {}, getStatus: {}, sendMessage: {} });
  });

  it('rejects a body that is not JSON', async () => {
    const result = await control(sandbox, 'POST', '/faults', '{not json');
    expect(result.status).toBe(400);
    expect(result.json.error.code).toBe('invalid_request');
  });

  it('fails GetStatus a set number of times with HTTP 503', async () => {
    const intent = await createIntent();
    const set = await control(sandbox, 'POST', '/faults', { getStatus: { fail: 2 } });
    expect(set.json.getStatus).toEqual({ fail: 2 });

    await expect(paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent })).rejects.toThrow('503');
    await expect(paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent })).rejects.toThrow('503');
    const third = await paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent });

    expect(third.exists).toBe(true);
  });

  it('fails GetStatus with an ERROR envelope', async () => {
    const intent = await createIntent();
    await control(sandbox, 'POST', '/faults', { getStatus: { fail: 1, failWith: 'error' } });

    const request = new proto.GetStatusRequest({ intentId: { value: (await import('bs58')).default.decode(intent) } });
    const result = await callRpc(sandbox.endpoint, 'MicroPayment', 'getStatus', request.toBinary());

    expect(result.status).toBe(200);
    expect(result.envelope.result).toBe(proto.Common.Response_Result.ERROR);
    expect(result.envelope.message).toContain('fault injection');
  });

  it('fails GetStatus always until cleared', async () => {
    const intent = await createIntent();
    await control(sandbox, 'POST', '/faults', { getStatus: { fail: 'always' } });

    for (let i = 0; i < 3; i += 1) {
      await expect(paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent })).rejects.toThrow('503');
    }
    await control(sandbox, 'POST', '/faults', { clear: true });

    expect((await paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent })).exists).toBe(true);
  });

  it('slows GetStatus by the delay', async () => {
    const intent = await createIntent();
    await control(sandbox, 'POST', '/faults', { getStatus: { delayMs: 200 } });

    const started = Date.now();
    await paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent });

    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('fails SendMessage without storing the intent', async () => {
    await control(sandbox, 'POST', '/faults', { sendMessage: { fail: 1 } });
    const signer = new RendezvousSigner();
    const request = signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 });

    const failed = await sendMessage(sandbox.endpoint, request);
    expect(failed.status).toBe(503);
    expect(sandbox.context.getIntent(signer.intentId)).toBeUndefined();

    const retried = await sendMessage(sandbox.endpoint, request);
    expect(retried.status).toBe(200);
    expect(retried.envelope.result).toBe(proto.Common.Response_Result.OK);
    expect(sandbox.context.getIntent(signer.intentId)?.status).toBe('pending');
  });

  it('makes the official create throw on a failed SendMessage', async () => {
    await control(sandbox, 'POST', '/faults', { sendMessage: { fail: 1 } });
    await expect(
      paymentIntents.create({
        endpoint: sandbox.endpoint,
        destination: randomAddress(),
        amount: 0.25,
        currency: 'usd',
        mode: 'payment',
        idempotencyKey: 'control-fault-create',
      }),
    ).rejects.toThrow('503');
  });

  it('clears every fault with DELETE', async () => {
    await control(sandbox, 'POST', '/faults', { getStatus: { fail: 'always', delayMs: 5 }, webhook: { drop: 3 } });

    const cleared = await control(sandbox, 'DELETE', '/faults');

    expect(cleared.json).toEqual({ webhook: {}, getStatus: {}, sendMessage: {} });
  });
});
