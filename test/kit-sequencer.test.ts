// The kit's sequencer client against the real sandbox sequencer over HTTP on
// loopback, and against small protobuf servers in this file for the responses
// the sandbox never sends (garbage, oversized bodies, unknown results).
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import * as proto from '@code-wallet/rpc';
import bs58 from 'bs58';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { CodePayError } from '../server/errors.js';
import { deriveIntent } from '../server/intent.js';
import { createMetrics } from '../server/metrics.js';
import { startSandbox, type SandboxHandle } from '../server/sandbox/index.js';
import { createSequencerClient, type SequencerClient } from '../server/sequencer.js';
import { classifyErrorEnvelope } from '../server/sequencer-errors.js';

const silent = pino({ level: 'silent' });

function randomAddress(): string {
  return bs58.encode(randomBytes(32));
}

function newIntent(overrides: { amount?: number; currency?: string; destination?: string; idempotencyKey?: string } = {}) {
  return deriveIntent({
    idempotencyKey: overrides.idempotencyKey ?? `kit-sequencer-${randomBytes(8).toString('hex')}`,
    amount: overrides.amount ?? 0.25,
    currency: overrides.currency ?? 'usd',
    destination: overrides.destination ?? randomAddress(),
  });
}

/** Awaits a promise that must reject with a CodePayError and returns the error. */
async function codePayError(promise: Promise<unknown>): Promise<CodePayError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(CodePayError);
  return error as CodePayError;
}

describe('sequencer client against the sandbox', () => {
  let sandbox: SandboxHandle;
  let client: SequencerClient;
  const metrics = createMetrics();

  async function control(path: string, body?: unknown): Promise<Response> {
    return fetch(`${sandbox.url}/control/${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, dataFile: ':memory:', logger: silent });
    client = createSequencerClient({ endpoint: sandbox.endpoint, timeoutMs: 2_000, logger: silent, metrics });
  });

  afterEach(async () => {
    const cleared = await control('faults', { clear: true });
    expect(cleared.status).toBe(200);
  });

  afterAll(async () => {
    client.close();
    await sandbox.close();
  });

  it('sendMessage creates the intent', async () => {
    const intent = newIntent();

    await client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId });

    const status = await client.getStatus(intent.intentId);
    expect(status).toEqual({ exists: true, codeScanned: false, intentSubmitted: false });
  });

  it('sendMessage accepts an identical repeat', async () => {
    const intent = newIntent();

    await client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId });
    await client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId });

    const intents = (await (await control(`intents/${intent.intentId}`)).json()) as { intentId: string };
    expect(intents.intentId).toBe(intent.intentId);
  });

  it('sendMessage rejects an amount over the limit', async () => {
    const intent = newIntent({ amount: 5 });

    const error = await codePayError(client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId }));

    expect(error.code).toBe('sequencer_rejected');
    expect(error.message).toBe('usd currency has a maximum amount of 1.00');
    expect(error.context.intentId).toBe(intent.intentId);
    const status = await client.getStatus(intent.intentId);
    expect(status.exists).toBe(false);
  });

  it('sendMessage rejects a mismatching repeat', async () => {
    const key = `kit-sequencer-${randomBytes(8).toString('hex')}`;
    const first = newIntent({ idempotencyKey: key });
    // The destination is not part of the intent id, so the same key and amount give the same intent.
    const second = newIntent({ idempotencyKey: key, destination: randomAddress() });
    expect(second.intentId).toBe(first.intentId);

    await client.sendMessage(first.sendMessageRequest, { intentId: first.intentId });
    const error = await codePayError(client.sendMessage(second.sendMessageRequest, { intentId: second.intentId }));

    expect(error.code).toBe('sequencer_rejected');
    expect(error.message).toBe('destination mismatches original request');
  });

  it('sendMessage rejects a paid intent', async () => {
    const intent = newIntent();
    await client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId });
    const paid = await control(`intents/${intent.intentId}/pay`, {});
    expect(paid.status).toBe(200);

    const error = await codePayError(client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId }));

    expect(error.code).toBe('sequencer_rejected');
    expect(error.message).toBe('client submitted intent');
  });

  it('sendMessage rejects a bad signature', async () => {
    const intent = newIntent();
    const request = proto.SendMessageRequest.fromBinary(intent.sendMessageRequest);
    request.signature!.value[0] ^= 0xff;

    const error = await codePayError(client.sendMessage(request.toBinary(), { intentId: intent.intentId }));

    expect(error.code).toBe('sequencer_rejected');
    expect(error.context.statusCode).toBe('unauthenticated');
  });

  it('getStatus follows scan and payment', async () => {
    const intent = newIntent();
    const unknown = await client.getStatus(intent.intentId);
    expect(unknown).toEqual({ exists: false, codeScanned: false, intentSubmitted: false });

    await client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId });
    expect((await control(`intents/${intent.intentId}/scan`, {})).status).toBe(200);
    const scanned = await client.getStatus(intent.intentId);
    expect(scanned).toEqual({ exists: true, codeScanned: true, intentSubmitted: false });

    expect((await control(`intents/${intent.intentId}/pay`, {})).status).toBe(200);
    const paid = await client.getStatus(intent.intentId);
    expect(paid).toEqual({ exists: true, codeScanned: true, intentSubmitted: true });
  });

  it('getStatus rejects an invalid intent id', async () => {
    const error = await codePayError(client.getStatus('not-base58-0OIl'));
    expect(error.code).toBe('invalid_request');
  });

  it('registerWebhook returns each result', async () => {
    const intent = newIntent();
    const url = 'http://127.0.0.1:9/code-pay/webhook';

    expect(await client.registerWebhook(intent.intentId, url)).toBe('request_not_found');

    await client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId });
    expect(await client.registerWebhook(intent.intentId, 'ftp://example.test/hook')).toBe('invalid_url');
    expect(await client.registerWebhook(intent.intentId, url)).toBe('ok');
    expect(await client.registerWebhook(intent.intentId, url)).toBe('already_registered');

    const paidIntent = newIntent();
    await client.sendMessage(paidIntent.sendMessageRequest, { intentId: paidIntent.intentId });
    expect((await control(`intents/${paidIntent.intentId}/pay`, {})).status).toBe(200);
    expect(await client.registerWebhook(paidIntent.intentId, url)).toBe('intent_exists');
  });

  it('fault with HTTP 503 is unavailable', async () => {
    const intent = newIntent();
    await control('faults', { sendMessage: { fail: 1, failWith: 'unavailable' } });

    const error = await codePayError(client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId }));

    expect(error.code).toBe('sequencer_unavailable');
    expect(error.message).toContain('HTTP 503');
    // The fault was for one call only, so the retry succeeds.
    await client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId });
  });

  it('fault with ERROR envelope is unavailable', async () => {
    const intent = newIntent();
    await control('faults', { sendMessage: { fail: 1, failWith: 'error' }, getStatus: { fail: 1, failWith: 'error' } });

    const sendError = await codePayError(client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId }));
    const statusError = await codePayError(client.getStatus(intent.intentId));

    expect(sendError.code).toBe('sequencer_unavailable');
    expect(sendError.context.statusCode).toBe('internal');
    expect(statusError.code).toBe('sequencer_unavailable');
  });

  it('slow getStatus times out', async () => {
    const slowClient = createSequencerClient({ endpoint: sandbox.endpoint, timeoutMs: 100, logger: silent });
    await control('faults', { getStatus: { delayMs: 1_000 } });

    const error = await codePayError(slowClient.getStatus(randomAddress()));

    expect(error.code).toBe('sequencer_unavailable');
    expect(error.message).toContain('timed out');
    slowClient.close();
  });

  it('slow sendMessage within the limit succeeds', async () => {
    const intent = newIntent();
    await control('faults', { sendMessage: { delayMs: 200 } });

    await client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId });

    expect((await client.getStatus(intent.intentId)).exists).toBe(true);
  });

  it('metrics count requests by method and outcome', async () => {
    const text = await metrics.render();
    expect(text).toMatch(/code_pay_sequencer_requests_total\{method="sendMessage",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/code_pay_sequencer_requests_total\{method="sendMessage",outcome="rejected"\} [1-9]/);
    expect(text).toMatch(/code_pay_sequencer_requests_total\{method="sendMessage",outcome="unavailable"\} [1-9]/);
    expect(text).toMatch(/code_pay_sequencer_request_seconds_count\{method="getStatus"\} [1-9]/);
    expect(text).toMatch(/code_pay_sequencer_errors_total\{method="sendMessage",code="sequencer_rejected"\} [1-9]/);
  });
});

describe('sequencer client transport failures', () => {
  it('closed port is unavailable', async () => {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const client = createSequencerClient({ endpoint: `http://127.0.0.1:${port}/v1`, timeoutMs: 5_000, logger: silent });

    const error = await codePayError(client.getStatus(randomAddress()));

    expect(error.code).toBe('sequencer_unavailable');
    expect(error.message).toContain('ECONNREFUSED');
    client.close();
  });
});

/** Starts a loopback server whose every response comes from `respond`; counts requests and connections. */
async function startFakeSequencer(respond: (request: proto.Common.Request, response: http.ServerResponse) => void) {
  let connections = 0;
  const requests: proto.Common.Request[] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const envelope = proto.Common.Request.fromBinary(Buffer.concat(chunks));
      requests.push(envelope);
      respond(envelope, response);
    });
  });
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}/v1`,
    requests,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function okEnvelope(body: Uint8Array): Buffer {
  return Buffer.from(new proto.Common.Response({ result: proto.Common.Response_Result.OK, body }).toBinary());
}

describe('sequencer client against malformed responses', () => {
  const cases: { name: string; respond: (response: http.ServerResponse) => void; expected: string }[] = [
    {
      name: 'garbage body',
      respond: (response) => response.end('<html>gateway error</html>'),
      expected: 'not a Common.Response',
    },
    {
      name: 'HTTP 500 with an ERROR envelope',
      respond: (response) => {
        response.statusCode = 500;
        response.end(Buffer.from(new proto.Common.Response({ result: proto.Common.Response_Result.ERROR, message: 'upstream down' }).toBinary()));
      },
      expected: 'HTTP 500',
    },
    {
      name: 'unknown envelope result',
      respond: (response) => response.end(Buffer.from(new proto.Common.Response({ result: 7 as proto.Common.Response_Result }).toBinary())),
      expected: 'unknown envelope result 7',
    },
    {
      name: 'inner body not a GetStatusResponse',
      respond: (response) => response.end(okEnvelope(Buffer.from([0xff, 0xff, 0xff]))),
      expected: 'does not decode as GetStatusResponse',
    },
    {
      name: 'submitted intent that does not exist',
      respond: (response) => response.end(okEnvelope(new proto.GetStatusResponse({ exists: false, intentSubmitted: true }).toBinary())),
      expected: 'does not exist but is marked submitted',
    },
    {
      name: 'oversized body',
      respond: (response) => response.end(Buffer.alloc(2 * 1024 * 1024)),
      expected: 'larger than',
    },
  ];

  for (const testCase of cases) {
    it(`${testCase.name} is unavailable`, async () => {
      const fake = await startFakeSequencer((_request, response) => testCase.respond(response));
      const client = createSequencerClient({ endpoint: fake.endpoint, timeoutMs: 5_000, logger: silent });

      const error = await codePayError(client.getStatus(randomAddress()));

      expect(error.code).toBe('sequencer_unavailable');
      expect(error.message).toContain(testCase.expected);
      client.close();
      await fake.close();
    });
  }

  it('unknown SendMessage result is unavailable', async () => {
    const fake = await startFakeSequencer((_request, response) =>
      response.end(okEnvelope(new proto.SendMessageResponse({ result: 9 as proto.SendMessageResponse_Result }).toBinary())),
    );
    const client = createSequencerClient({ endpoint: fake.endpoint, logger: silent });
    const intent = newIntent();

    const error = await codePayError(client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId }));

    expect(error.code).toBe('sequencer_unavailable');
    expect(error.message).toContain('unknown result 9');
    client.close();
    await fake.close();
  });

  it('NO_ACTIVE_STREAM result is rejected', async () => {
    const fake = await startFakeSequencer((_request, response) =>
      response.end(okEnvelope(new proto.SendMessageResponse({ result: proto.SendMessageResponse_Result.NO_ACTIVE_STREAM }).toBinary())),
    );
    const client = createSequencerClient({ endpoint: fake.endpoint, logger: silent });
    const intent = newIntent();

    const error = await codePayError(client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId }));

    expect(error.code).toBe('sequencer_rejected');
    expect(error.message).toContain('NO_ACTIVE_STREAM');
    client.close();
    await fake.close();
  });

  it('unknown RegisterWebhook result is unavailable', async () => {
    const fake = await startFakeSequencer((_request, response) =>
      response.end(okEnvelope(new proto.RegisterWebhookResponse({ result: 12 as proto.RegisterWebhookResponse_Result }).toBinary())),
    );
    const client = createSequencerClient({ endpoint: fake.endpoint, logger: silent });

    const error = await codePayError(client.registerWebhook(randomAddress(), 'https://game.example/code-pay/webhook'));

    expect(error.code).toBe('sequencer_unavailable');
    client.close();
    await fake.close();
  });

  it('requests use the official wire format', async () => {
    const fake = await startFakeSequencer((_request, response) => response.end(okEnvelope(new proto.GetStatusResponse({ exists: true }).toBinary())));
    const client = createSequencerClient({ endpoint: `${fake.endpoint}/`, logger: silent });
    const intentId = randomAddress();

    await client.getStatus(intentId);

    const request = fake.requests[0]!;
    expect(request.service).toBe('MicroPayment');
    expect(request.method).toBe('getStatus');
    expect(bs58.encode(proto.GetStatusRequest.fromBinary(request.body).intentId!.value)).toBe(intentId);
    client.close();
    await fake.close();
  });

  it('retries once when a kept-alive connection was closed', async () => {
    // The server answers the first request on each connection and resets the
    // connection on the second, as a server does after its idle timeout.
    const requestsPerSocket = new WeakMap<object, number>();
    const fake = await startFakeSequencer((request, response) => {
      void request;
      const socket = response.socket!;
      const count = (requestsPerSocket.get(socket) ?? 0) + 1;
      requestsPerSocket.set(socket, count);
      if (count > 1) {
        socket.destroy();
        return;
      }
      response.end(okEnvelope(new proto.GetStatusResponse({ exists: true }).toBinary()));
    });
    const client = createSequencerClient({ endpoint: fake.endpoint, logger: silent });

    const first = await client.getStatus(randomAddress());
    const second = await client.getStatus(randomAddress());

    expect(first.exists).toBe(true);
    expect(second.exists).toBe(true);
    expect(fake.requests.length).toBe(3);
    expect(fake.connections()).toBe(2);
    client.close();
    await fake.close();
  });

  it('keeps connections alive between requests', async () => {
    const fake = await startFakeSequencer((_request, response) => response.end(okEnvelope(new proto.GetStatusResponse({ exists: true }).toBinary())));
    const client = createSequencerClient({ endpoint: fake.endpoint, logger: silent });

    for (let index = 0; index < 20; index += 1) {
      await client.getStatus(randomAddress());
    }

    expect(fake.requests.length).toBe(20);
    expect(fake.connections()).toBe(1);
    client.close();
    await fake.close();
  });
});

describe('error envelope classification', () => {
  const cases: [string, 'rejected' | 'unavailable', string][] = [
    ['[invalid_argument] usd currency has a maximum amount of 1.00', 'rejected', 'usd currency has a maximum amount of 1.00'],
    ['[unauthenticated]', 'rejected', ''],
    ['[permission_denied] not allowed', 'rejected', 'not allowed'],
    ['[internal]', 'unavailable', ''],
    ['[unavailable] try again', 'unavailable', 'try again'],
    ['rpc error: code = InvalidArgument desc = native amount mismatches original request', 'rejected', 'native amount mismatches original request'],
    ['InvalidArgument: exchange currency mismatches original request', 'rejected', 'exchange currency mismatches original request'],
    ['Internal: Messaging.SendMessage failed', 'unavailable', 'Messaging.SendMessage failed'],
    ['client submitted intent', 'rejected', 'client submitted intent'],
    ['eur currency has a minimum amount of 0.05', 'rejected', 'eur currency has a minimum amount of 0.05'],
    ['No response received from gRPC service', 'unavailable', 'No response received from gRPC service'],
    ['Error: something odd', 'unavailable', 'Error: something odd'],
  ];

  for (const [message, kind, text] of cases) {
    it(`classifies ${JSON.stringify(message)}`, () => {
      const classified = classifyErrorEnvelope(message);
      expect(classified.kind).toBe(kind);
      expect(classified.message).toBe(text);
    });
  }
});
