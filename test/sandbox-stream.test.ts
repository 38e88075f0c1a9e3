import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519';
import { pino } from 'pino';
import { WebSocket as NodeWebSocket } from 'ws';
import * as proto from '@code-wallet/rpc';
import { PaymentRequestIntent } from '@code-wallet/intents';
import { paymentIntents } from '@code-wallet/client';
import type { SandboxHandle } from '../server/sandbox/index.js';
import { attachMessageStream } from '../server/sandbox/stream.js';
import { messageIdFor } from '../server/sandbox/stream-messages.js';
import { FakeSandboxContext } from './sandbox-stream-fake-context.js';
import { makeTempDir, startTestSandbox } from './sandbox-helpers.js';

// RpcStream from @code-wallet/rpc opens the global WebSocket, which Node 20
// lacks unless started with --experimental-websocket. The `ws` package
// provides the same browser API.
if (typeof globalThis.WebSocket === 'undefined') {
  (globalThis as { WebSocket?: unknown }).WebSocket = NodeWebSocket;
}

const DESTINATION = 'E8otxw1CVX9bfyddKu3ZB3BVLa4VVF9J7CTPdnUwT9jR';

type StreamItem = [proto.OpenMessageStreamResponse | undefined, Error | undefined];

let sandbox: SandboxHandle;
let tempDir: { dir: string; remove: () => void };
let wsUrl: string;
let keyCounter = 0;
let intent: PaymentRequestIntent;

beforeAll(async () => {
  tempDir = makeTempDir();
  sandbox = await startTestSandbox({ dataFile: join(tempDir.dir, 'sandbox.db') });
  wsUrl = `${sandbox.url.replace('http://', 'ws://')}/v1/ws`;
});

afterAll(async () => {
  await sandbox.close();
  tempDir.remove();
});

beforeEach(() => {
  keyCounter += 1;
  intent = new PaymentRequestIntent({
    destination: DESTINATION,
    amount: 0.25,
    currency: 'usd',
    idempotencyKey: `stream-test-${process.pid}-${keyCounter}`,
  });
});

/** Creates the intent at the sandbox with the official client, as a game server does. */
async function storeIntent(): Promise<void> {
  const created = await paymentIntents.create({
    endpoint: sandbox.endpoint,
    mode: 'payment',
    destination: DESTINATION,
    amount: 0.25,
    currency: 'usd',
    idempotencyKey: `stream-test-${process.pid}-${keyCounter}`,
  });
  expect(created.id).toBe(intent.getIntentId());
}

/** Acts as the simulated wallet through the control API. */
async function wallet(action: 'scan' | 'pay' | 'reject'): Promise<void> {
  const response = await fetch(`${sandbox.url}/control/intents/${intent.getIntentId()}/${action}`, { method: 'POST' });
  expect(response.status).toBe(200);
}

function signedOpenRequest(signer = intent): proto.OpenMessageStreamRequest {
  const request = new proto.OpenMessageStreamRequest({
    rendezvousKey: new proto.RendezvousKey({ value: intent.rendezvousKeypair.getPublicKey().value }),
  });
  const signature = ed25519.sign(request.toBinary(), signer.rendezvousKeypair.getPrivateValue());
  request.signature = new proto.Common.Signature({ value: signature });
  return request;
}

async function openStream(request: proto.OpenMessageStreamRequest) {
  const stream = await proto.RpcStream.create(proto.Messaging, 'openMessageStream', wsUrl);
  stream.write(request);
  const reader = stream.read()[Symbol.asyncIterator]();
  return { stream, next: () => nextItem(reader) };
}

async function nextItem(reader: AsyncIterator<[unknown, Error | undefined]>): Promise<StreamItem> {
  const timeout = new Promise<never>((_resolve, reject) => {
    setTimeout(() => reject(new Error('no frame arrived within 5 s')), 5_000).unref();
  });
  const result = await Promise.race([reader.next(), timeout]);
  return result.value as StreamItem;
}

async function nextKind(next: () => Promise<StreamItem>): Promise<string | undefined> {
  const [response, error] = await next();
  if (error) {
    throw error;
  }
  expect(response?.messages).toHaveLength(1);
  return response?.messages[0]?.kind.case;
}

describe('message stream', () => {
  it('delivers scan and payment live', async () => {
    await storeIntent();
    const { stream, next } = await openStream(signedOpenRequest());

    expect(await nextKind(next)).toBe('requestToReceiveBill');

    await wallet('scan');
    expect(await nextKind(next)).toBe('codeScanned');

    await wallet('pay');
    const [response] = await next();
    const message = response?.messages[0];
    expect(message?.kind.case).toBe('intentSubmitted');
    const submitted = message?.kind.value as proto.IntentSubmitted;
    expect(submitted.intentId?.value).toEqual(intent.rendezvousKeypair.getPublicKey().value);

    stream.close();
  });

  it('delivers a rejection', async () => {
    await storeIntent();
    const { stream, next } = await openStream(signedOpenRequest());
    expect(await nextKind(next)).toBe('requestToReceiveBill');

    await wallet('reject');
    expect(await nextKind(next)).toBe('codeScanned');
    expect(await nextKind(next)).toBe('clientRejectedPayment');

    stream.close();
  });

  it('catches up a stream opened after payment', async () => {
    await storeIntent();
    await wallet('pay');

    const { stream, next } = await openStream(signedOpenRequest());

    expect(await nextKind(next)).toBe('requestToReceiveBill');
    expect(await nextKind(next)).toBe('codeScanned');
    expect(await nextKind(next)).toBe('intentSubmitted');

    stream.close();
  });

  it('delivers the request once the intent is created', async () => {
    const { stream, next } = await openStream(signedOpenRequest());

    await storeIntent();
    expect(await nextKind(next)).toBe('requestToReceiveBill');

    stream.close();
  });

  it('accepts an unsigned request', async () => {
    await storeIntent();
    const request = signedOpenRequest();
    request.signature = undefined;

    const { stream, next } = await openStream(request);
    expect(await nextKind(next)).toBe('requestToReceiveBill');

    stream.close();
  });

  it('rejects a bad signature', async () => {
    await storeIntent();
    const otherIntent = new PaymentRequestIntent({
      destination: DESTINATION,
      amount: 0.5,
      currency: 'usd',
      idempotencyKey: `stream-test-other-${process.pid}-${keyCounter}`,
    });

    const { next } = await openStream(signedOpenRequest(otherIntent));
    const [response, error] = await next();

    expect(response).toBeUndefined();
    expect(error?.message).toMatch(/unauthenticated/);
  });

  it('rejects a garbage frame', async () => {
    const socket = new NodeWebSocket(wsUrl);
    socket.binaryType = 'arraybuffer';
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });

    const frame = new Promise<ArrayBuffer>((resolve) => socket.once('message', (data) => resolve(data as ArrayBuffer)));
    socket.send(new Uint8Array([0xff, 0xff, 0xff, 0x07, 0x01]));
    const response = proto.Common.Response.fromBinary(new Uint8Array(await frame));

    expect(response.result).toBe(proto.Common.Response_Result.ERROR);
    expect(response.message).toMatch(/invalid frame/);

    // The server keeps serving new streams.
    await storeIntent();
    const { stream, next } = await openStream(signedOpenRequest());
    expect(await nextKind(next)).toBe('requestToReceiveBill');
    stream.close();
  });

  it('rejects a short rendezvous key', async () => {
    const request = new proto.OpenMessageStreamRequest({
      rendezvousKey: new proto.RendezvousKey({ value: new Uint8Array(5) }),
    });

    const { next } = await openStream(request);
    const [, error] = await next();

    expect(error?.message).toMatch(/rendezvous_key must be a 32-byte/);
  });

  it('rejects a second stream for one key', async () => {
    await storeIntent();
    const first = await openStream(signedOpenRequest());
    expect(await nextKind(first.next)).toBe('requestToReceiveBill');

    const second = await openStream(signedOpenRequest());
    const [, error] = await second.next();
    expect(error?.message).toMatch(/already open/);

    first.stream.close();
  });

  it('skips acknowledged messages', async () => {
    await storeIntent();
    const ack = await proto.RpcStream.createUnaryMethod(proto.Messaging, 'ackMessages', wsUrl);
    await ack(
      new proto.AckMessagesRequest({
        rendezvousKey: new proto.RendezvousKey({ value: intent.rendezvousKeypair.getPublicKey().value }),
        messageIds: [new proto.MessageId({ value: messageIdFor(intent.getIntentId(), 'requestToReceiveBill') })],
      }),
    );

    const { stream, next } = await openStream(signedOpenRequest());
    await wallet('scan');

    expect(await nextKind(next)).toBe('codeScanned');
    stream.close();
  });

  it('forwards unary calls to the sequencer', async () => {
    await storeIntent();
    await wallet('pay');

    const getStatus = await proto.RpcStream.createUnaryMethod(proto.MicroPayment, 'getStatus', wsUrl);
    const status = await getStatus(
      new proto.GetStatusRequest({ intentId: { value: intent.rendezvousKeypair.getPublicKey().value } }),
    );

    expect(status.exists).toBe(true);
    expect(status.intentSubmitted).toBe(true);
  });
});

describe('message stream timeout', () => {
  let server: Server;
  let context: FakeSandboxContext;
  let closeStreams: () => Promise<void>;
  let fakeUrl: string;

  beforeAll(async () => {
    context = new FakeSandboxContext();
    server = createServer((_request, response) => {
      response.statusCode = 404;
      response.end();
    });
    closeStreams = attachMessageStream(server, context, { streamTimeoutMs: 500, logger: pino({ level: 'silent' }) });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    fakeUrl = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/ws`;
  });

  afterAll(async () => {
    await closeStreams();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('ends a stream after its timeout', async () => {
    context.create({ intentId: intent.getIntentId(), destination: DESTINATION, currency: 'usd', amount: 0.25 });
    const stream = await proto.RpcStream.create(proto.Messaging, 'openMessageStream', fakeUrl);
    stream.write(signedOpenRequest());
    const reader = stream.read()[Symbol.asyncIterator]();

    expect(await nextKind(() => nextItem(reader))).toBe('requestToReceiveBill');

    const [, error] = await nextItem(reader);
    expect(error?.message).toMatch(/deadline exceeded/);
  });
});
