// The unary RPCs against a real sandbox on loopback, through the official
// client where it has a method and raw envelopes where it has none.
import * as proto from '@code-wallet/rpc';
import { paymentIntents, webhook } from '@code-wallet/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SandboxHandle } from '../server/sandbox/index.js';
import {
  callRpc,
  control,
  makeTempDir,
  postRaw,
  randomAddress,
  RendezvousSigner,
  sendMessage,
  startTestSandbox,
} from './sandbox-helpers.js';

let sandbox: SandboxHandle;
let temp: ReturnType<typeof makeTempDir>;

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox({ dataFile: `${temp.dir}/sandbox.db` });
});

afterAll(async () => {
  await sandbox.close();
  temp.remove();
});

function expectError(result: { status: number; envelope: proto.Common.Response }, fragment: string): void {
  expect(result.status).toBe(200);
  expect(result.envelope.result).toBe(proto.Common.Response_Result.ERROR);
  expect(result.envelope.message).toContain(fragment);
}

function expectOk(result: { status: number; envelope: proto.Common.Response }): void {
  expect(result.status).toBe(200);
  expect(result.envelope.message).toBe('');
  expect(result.envelope.result).toBe(proto.Common.Response_Result.OK);
}

describe('official client', () => {
  it('creates, re-creates and checks an intent', async () => {
    const destination = randomAddress();
    const options = {
      endpoint: sandbox.endpoint,
      destination,
      amount: 0.25,
      currency: 'usd' as const,
      mode: 'payment' as const,
      idempotencyKey: 'client-create-1',
    };

    const first = await paymentIntents.create(options);
    const second = await paymentIntents.create(options);

    expect(second.id).toBe(first.id);
    expect(second.clientSecret).toBe(first.clientSecret);
    const intent = sandbox.context.getIntent(first.id);
    expect(intent?.destination).toBe(destination);
    expect(intent?.amount).toBe(0.25);
    expect(intent?.currency).toBe('usd');
    expect(intent?.status).toBe('pending');

    const status = await paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent: first.id });
    expect(status).toEqual({ status: 'pending', exists: true, codeScanned: false, intentSubmitted: false });
  });

  it('reports scanned and paid intents', async () => {
    const created = await paymentIntents.create({
      endpoint: sandbox.endpoint,
      destination: randomAddress(),
      amount: 0.5,
      currency: 'usd',
      mode: 'payment',
      idempotencyKey: 'client-status-1',
    });

    sandbox.context.scan(created.id);
    const scanned = await paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent: created.id });
    expect(scanned.codeScanned).toBe(true);
    expect(scanned.intentSubmitted).toBe(false);

    sandbox.context.pay(created.id);
    const paid = await paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent: created.id });
    expect(paid).toEqual({ status: 'confirmed', exists: true, codeScanned: true, intentSubmitted: true });
  });

  it('reports an unknown intent as not existing', async () => {
    const status = await paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent: randomAddress() });
    expect(status.exists).toBe(false);
    expect(status.codeScanned).toBe(false);
    expect(status.intentSubmitted).toBe(false);
  });

  it('creates a kin intent with exact exchange data', async () => {
    const created = await paymentIntents.create({
      endpoint: sandbox.endpoint,
      destination: randomAddress(),
      amount: 5000,
      currency: 'kin',
      mode: 'payment',
      idempotencyKey: 'client-kin-1',
    });
    const intent = sandbox.context.getIntent(created.id);
    expect(intent?.currency).toBe('kin');
    expect(intent?.amount).toBe(5000);
  });
});

describe('SendMessage', () => {
  it('stores an identical repeat once', async () => {
    const signer = new RendezvousSigner();
    const request = signer.sendMessageRequest({ destination: randomAddress(), currency: 'eur', amount: 0.3 });

    expectOk(await sendMessage(sandbox.endpoint, request));
    expectOk(await sendMessage(sandbox.endpoint, request));

    const listed = sandbox.context.listIntents().filter((intent) => intent.intentId === signer.intentId);
    expect(listed).toHaveLength(1);
  });

  it('returns SendMessageResponse result OK', async () => {
    const signer = new RendezvousSigner();
    const result = await sendMessage(sandbox.endpoint, signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.1 }));
    expectOk(result);
    expect(proto.SendMessageResponse.fromBinary(result.envelope.body).result).toBe(proto.SendMessageResponse_Result.OK);
  });

  it('rejects a repeat with another destination', async () => {
    const signer = new RendezvousSigner();
    expectOk(await sendMessage(sandbox.endpoint, signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 })));

    const repeat = await sendMessage(sandbox.endpoint, signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 }));

    expectError(repeat, 'InvalidArgument: destination mismatches original request');
  });

  it('keeps first destination on client repeat', async () => {
    const options = {
      endpoint: sandbox.endpoint,
      amount: 0.25,
      currency: 'usd' as const,
      mode: 'payment' as const,
      idempotencyKey: 'client-mismatch-1',
    };
    const firstDestination = randomAddress();
    const created = await paymentIntents.create({ ...options, destination: firstDestination });
    const changed = await paymentIntents.create({ ...options, destination: randomAddress() });

    // The official client ignores the ERROR envelope, so it returns the same
    // id; the sandbox kept the first destination.
    expect(changed.id).toBe(created.id);
    expect(sandbox.context.getIntent(created.id)?.destination).toBe(firstDestination);
  });

  it('rejects a repeat with another currency', async () => {
    const signer = new RendezvousSigner();
    const destination = randomAddress();
    expectOk(await sendMessage(sandbox.endpoint, signer.sendMessageRequest({ destination, currency: 'usd', amount: 0.25 })));

    const repeat = await sendMessage(sandbox.endpoint, signer.sendMessageRequest({ destination, currency: 'cad', amount: 0.25 }));

    expectError(repeat, 'exchange currency mismatches original request');
  });

  it('rejects a repeat with another amount', async () => {
    const signer = new RendezvousSigner();
    const destination = randomAddress();
    expectOk(await sendMessage(sandbox.endpoint, signer.sendMessageRequest({ destination, currency: 'usd', amount: 0.25 })));

    const repeat = await sendMessage(sandbox.endpoint, signer.sendMessageRequest({ destination, currency: 'usd', amount: 0.26 }));

    expectError(repeat, 'native amount mismatches original request');
  });

  it('rejects a repeat with other fee takers', async () => {
    const signer = new RendezvousSigner();
    const destination = randomAddress();
    expectOk(await sendMessage(sandbox.endpoint, signer.sendMessageRequest({ destination, currency: 'usd', amount: 0.25 })));

    const repeat = await sendMessage(
      sandbox.endpoint,
      signer.sendMessageRequest({ destination, currency: 'usd', amount: 0.25, fees: [{ destination: randomAddress(), basisPoints: 100 }] }),
    );

    expectError(repeat, 'original request configured 0 fee takers');
  });

  it.each([
    ['usd', 0.04, 'usd currency has a minimum amount of 0.05'],
    ['usd', 1.01, 'usd currency has a maximum amount of 1.00'],
    ['eur', 0.01, 'eur currency has a minimum amount of 0.05'],
    ['cad', 2, 'cad currency has a maximum amount of 1.00'],
    ['gbp', 1.5, 'gbp currency has a maximum amount of 1.00'],
    ['aud', 0.02, 'aud currency has a minimum amount of 0.05'],
    ['jpy', 101, 'jpy currency has a maximum amount of 100.00'],
    ['xyz', 0.5, 'xyz currency is not currently supported'],
  ])('rejects %s %s outside the limits', async (currency, amount, message) => {
    const signer = new RendezvousSigner();

    const result = await sendMessage(sandbox.endpoint, signer.sendMessageRequest({ destination: randomAddress(), currency, amount }));

    expectError(result, message);
    expect(sandbox.context.getIntent(signer.intentId)).toBeUndefined();
  });

  it.each([
    ['usd', 0.05],
    ['usd', 1],
    ['jpy', 5],
  ])('accepts %s %s at a limit', async (currency, amount) => {
    const signer = new RendezvousSigner();
    expectOk(await sendMessage(sandbox.endpoint, signer.sendMessageRequest({ destination: randomAddress(), currency, amount })));
  });

  it('rejects kin amounts outside the limits', async () => {
    const signer = new RendezvousSigner();
    const result = await sendMessage(
      sandbox.endpoint,
      signer.sendMessageRequest({ destination: randomAddress(), currency: 'kin', amount: 100_000, exact: { exchangeRate: 1, quarks: 10_000_000_000n } }),
    );
    expectError(result, 'kin currency has a maximum amount of 50000.00');
  });

  it('rejects partial exchange data for kin', async () => {
    const signer = new RendezvousSigner();
    const result = await sendMessage(sandbox.endpoint, signer.sendMessageRequest({ destination: randomAddress(), currency: 'kin', amount: 5000 }));
    expectError(result, 'partial exchange data is reserved for fiat currencies');
  });

  it('rejects a bad signature', async () => {
    const signer = new RendezvousSigner();
    const request = signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 });
    request.signature!.value[0] = request.signature!.value[0]! ^ 0xff;

    const result = await sendMessage(sandbox.endpoint, request);

    expectError(result, 'Unauthenticated: signature does not verify with the rendezvous key');
    expect(sandbox.context.getIntent(signer.intentId)).toBeUndefined();
  });

  it('rejects a signature by another key', async () => {
    const signer = new RendezvousSigner();
    const other = new RendezvousSigner();
    const request = signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 });
    request.signature = other.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 }).signature;

    expectError(await sendMessage(sandbox.endpoint, request), 'Unauthenticated');
  });

  it('rejects a missing signature', async () => {
    const signer = new RendezvousSigner();
    const request = signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 });
    request.signature = undefined;

    expectError(await sendMessage(sandbox.endpoint, request), 'signature must be a 64-byte Ed25519 signature');
  });

  it('rejects a request for a paid intent', async () => {
    const signer = new RendezvousSigner();
    const request = signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 });
    expectOk(await sendMessage(sandbox.endpoint, request));
    sandbox.context.pay(signer.intentId);

    expectError(await sendMessage(sandbox.endpoint, request), 'InvalidArgument: client submitted intent');
  });

  it('accepts a repeat for a rejected intent', async () => {
    const signer = new RendezvousSigner();
    const request = signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 });
    expectOk(await sendMessage(sandbox.endpoint, request));
    sandbox.context.reject(signer.intentId);

    expectOk(await sendMessage(sandbox.endpoint, request));
    expect(sandbox.context.getIntent(signer.intentId)?.status).toBe('rejected');
  });

  it('rejects a message kind other than a payment request', async () => {
    const signer = new RendezvousSigner();
    const request = signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 });
    request.message = new proto.Message({ kind: { case: 'intentSubmitted', value: new proto.IntentSubmitted() } });

    expectError(await sendMessage(sandbox.endpoint, request), 'message.kind cannot be intent_submitted');
  });

  it('rejects a message without a kind', async () => {
    const signer = new RendezvousSigner();
    const request = signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 });
    request.message = new proto.Message();

    expectError(await sendMessage(sandbox.endpoint, request), 'message.kind must be set');
  });

  it('rejects a message id set by the client', async () => {
    const signer = new RendezvousSigner();
    const request = signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 });
    request.message!.id = new proto.MessageId({ value: new Uint8Array(16) });

    expectError(await sendMessage(sandbox.endpoint, request), 'message.id cannot be set by clients');
  });

  it('rejects a short rendezvous key', async () => {
    const signer = new RendezvousSigner();
    const request = signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.25 });
    request.rendezvousKey = new proto.RendezvousKey({ value: new Uint8Array(31) });

    expectError(await sendMessage(sandbox.endpoint, request), 'rendezvous_key must be a 32-byte public key');
  });

  it('rejects a fee taker that is the destination', async () => {
    const signer = new RendezvousSigner();
    const destination = randomAddress();
    const result = await sendMessage(
      sandbox.endpoint,
      signer.sendMessageRequest({ destination, currency: 'usd', amount: 0.25, fees: [{ destination, basisPoints: 100 }] }),
    );
    expectError(result, 'fee taker at index 0 is the payment destination and should be omitted');
  });

  it('rejects fees above 5000 basis points', async () => {
    const signer = new RendezvousSigner();
    const result = await sendMessage(
      sandbox.endpoint,
      signer.sendMessageRequest({
        destination: randomAddress(),
        currency: 'usd',
        amount: 0.25,
        fees: [
          { destination: randomAddress(), basisPoints: 3000 },
          { destination: randomAddress(), basisPoints: 2001 },
        ],
      }),
    );
    expectError(result, 'total fee percentage cannot exceed 5000 basis points');
  });

  it('leaves one record for 100 concurrent identical calls', async () => {
    const signer = new RendezvousSigner();
    const request = signer.sendMessageRequest({ destination: randomAddress(), currency: 'usd', amount: 0.75 });

    const results = await Promise.all(Array.from({ length: 100 }, () => sendMessage(sandbox.endpoint, request)));

    for (const result of results) {
      expectOk(result);
    }
    const listed = sandbox.context.listIntents().filter((intent) => intent.intentId === signer.intentId);
    expect(listed).toHaveLength(1);
  });

  it('leaves one record for 100 client calls', async () => {
    const options = {
      endpoint: sandbox.endpoint,
      destination: randomAddress(),
      amount: 0.2,
      currency: 'usd' as const,
      mode: 'payment' as const,
      idempotencyKey: 'client-concurrent-1',
    };
    const before = (await control(sandbox, 'GET', '/intents?limit=1')).json.total as number;

    const created = await Promise.all(Array.from({ length: 100 }, () => paymentIntents.create(options)));

    expect(new Set(created.map((intent) => intent.id)).size).toBe(1);
    const after = (await control(sandbox, 'GET', '/intents?limit=1')).json.total as number;
    expect(after - before).toBe(1);
  });
});

describe('RegisterWebhook', () => {
  async function createIntent(key: string): Promise<string> {
    const created = await paymentIntents.create({
      endpoint: sandbox.endpoint,
      destination: randomAddress(),
      amount: 0.25,
      currency: 'usd',
      mode: 'payment',
      idempotencyKey: key,
    });
    return created.id;
  }

  it('returns ok, then already_registered', async () => {
    const intent = await createIntent('webhook-register-1');

    const first = await webhook.register({ endpoint: sandbox.endpoint, intent, url: 'http://127.0.0.1:9/hook' });
    const second = await webhook.register({ endpoint: sandbox.endpoint, intent, url: 'http://127.0.0.1:9/other' });

    expect(first).toEqual({ success: true, message: 'ok' });
    expect(second).toEqual({ success: false, message: 'already_registered' });
    expect(sandbox.context.getIntent(intent)?.webhookUrl).toBe('http://127.0.0.1:9/hook');
  });

  it('returns request_not_found for unknown intents', async () => {
    const result = await webhook.register({ endpoint: sandbox.endpoint, intent: randomAddress(), url: 'http://127.0.0.1:9/hook' });
    expect(result).toEqual({ success: false, message: 'request_not_found' });
  });

  it('returns intent_exists once paid', async () => {
    const intent = await createIntent('webhook-register-paid');
    sandbox.context.pay(intent);

    const result = await webhook.register({ endpoint: sandbox.endpoint, intent, url: 'http://127.0.0.1:9/hook' });

    expect(result).toEqual({ success: false, message: 'intent_exists' });
  });

  it.each(['ftp://127.0.0.1/hook', 'localhost:3000/hook', 'http://', 'javascript:alert(1)', 'http://exa mple.com/'])(
    'returns invalid_url for %s',
    async (url) => {
      const intent = await createIntent(`webhook-invalid-${url}`);
      const result = await webhook.register({ endpoint: sandbox.endpoint, intent, url });
      expect(result).toEqual({ success: false, message: 'invalid_url' });
      expect(sandbox.context.getIntent(intent)?.webhookUrl).toBeUndefined();
    },
  );

  it('adds http to a URL without a scheme', async () => {
    const intent = await createIntent('webhook-no-scheme');
    const result = await webhook.register({ endpoint: sandbox.endpoint, intent, url: '127.0.0.1:9/hook' });
    expect(result.success).toBe(true);
    expect(sandbox.context.getIntent(intent)?.webhookUrl).toBe('http://127.0.0.1:9/hook');
  });

  it('lets the official create register a webhook', async () => {
    const created = await paymentIntents.create({
      endpoint: sandbox.endpoint,
      destination: randomAddress(),
      amount: 0.25,
      currency: 'usd',
      mode: 'payment',
      idempotencyKey: 'webhook-create-1',
      webhook: { url: 'http://127.0.0.1:9/hook' },
    });
    expect(sandbox.context.getIntent(created.id)?.webhookUrl).toBe('http://127.0.0.1:9/hook');
  });
});

describe('bad requests', () => {
  it('rejects an unknown method', async () => {
    const result = await callRpc(sandbox.endpoint, 'MicroPayment', 'getPaymentHistory', new Uint8Array());
    expectError(result, 'unknown method MicroPayment.GetPaymentHistory');
  });

  it('rejects an unknown service', async () => {
    const result = await callRpc(sandbox.endpoint, 'Treasury', 'getAll', new Uint8Array());
    expectError(result, 'unknown method Treasury.GetAll');
  });

  it('points the stream method at the WebSocket', async () => {
    const result = await callRpc(sandbox.endpoint, 'Messaging', 'openMessageStream', new Uint8Array());
    expectError(result, '/v1/ws');
  });

  it('rejects an envelope that does not parse', async () => {
    const result = await postRaw(sandbox.endpoint, new Uint8Array([0x0a, 0xff, 0xff, 0xff]));
    expectError(result, 'body is not a valid Common.Request');
  });

  it('rejects a method body that does not parse', async () => {
    const result = await callRpc(sandbox.endpoint, 'Messaging', 'sendMessage', new Uint8Array([0x0a, 0x50, 0x01]));
    expectError(result, 'body of Messaging.SendMessage is not a valid request message');
  });

  it('rejects an oversized body', async () => {
    const result = await postRaw(sandbox.endpoint, new Uint8Array(200 * 1024));
    expectError(result, 'request body exceeds the limit of 65536 bytes');
  });

  it('rejects a JSON content type', async () => {
    const result = await postRaw(sandbox.endpoint, new TextEncoder().encode('{"service":"Messaging"}'), 'application/json');
    expectError(result, 'content type must be application/octet-stream');
  });

  it('keeps serving after bad requests', async () => {
    await postRaw(sandbox.endpoint, new Uint8Array([0xff, 0xff]));
    const status = await paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent: randomAddress() });
    expect(status.exists).toBe(false);
  });
});

describe('stats', () => {
  it('counts calls by method', async () => {
    const before = sandbox.stats().rpc['MicroPayment.GetStatus'] ?? 0;

    await paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent: randomAddress() });
    await paymentIntents.getStatus({ endpoint: sandbox.endpoint, intent: randomAddress() });

    const { json } = await control(sandbox, 'GET', '/stats');
    expect(json.rpc['MicroPayment.GetStatus']).toBe(before + 2);
    expect(json.rpc['Messaging.SendMessage']).toBeGreaterThan(0);
  });
});
