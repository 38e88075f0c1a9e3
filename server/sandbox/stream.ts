import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { ed25519 } from '@noble/curves/ed25519';
import bs58 from 'bs58';
import { pino, type Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import * as proto from '@code-wallet/rpc';
import type { SandboxContext, SandboxIntentEvent } from './context.js';
import {
  buildStreamMessage,
  messageIdFor,
  messageKindsForEvent,
  messageKindsForIntent,
  type StreamMessageKind,
} from './stream-messages.js';

export interface MessageStreamOptions {
  /** Path of the WebSocket endpoint; `/v1/ws` by default. */
  path?: string;
  /**
   * More paths that serve the same endpoint. By default `/sdk` + `path`, where
   * the elements pages connect when `https://sdk.getcode.com/*` is mapped onto
   * the sandbox's `/sdk/*`.
   */
  aliasPaths?: string[];
  /**
   * Milliseconds after which an open message stream ends with an ERROR frame.
   * Code's server ends a stream without keep-alive after 61 seconds, which is
   * the default.
   */
  streamTimeoutMs?: number;
  /**
   * Path of the sandbox's unary RPC endpoint on the same server, where
   * unary calls that arrive over the WebSocket (`RpcStream.createUnaryMethod`)
   * are forwarded; `/v1/api/` by default.
   */
  unaryPath?: string;
  /** Largest frame accepted, in bytes; 64 KiB by default. */
  maxFrameBytes?: number;
  logger?: Logger;
}

const DEFAULT_STREAM_TIMEOUT_MS = 61_000;
const DEFAULT_MAX_FRAME_BYTES = 64 * 1024;
const ED25519_PUBLIC_KEY_BYTES = 32;
const ED25519_SIGNATURE_BYTES = 64;

/** Shared state of every connection on one server. */
interface StreamRegistry {
  context: SandboxContext;
  logger: Logger;
  streamTimeoutMs: number;
  unaryUrl: () => string;
  /** The open message stream of each rendezvous key (base58), at most one. */
  openStreams: Map<string, WebSocket>;
  /** Hex ids of the messages each rendezvous key acknowledged; skipped on later streams. */
  ackedMessageIds: Map<string, Set<string>>;
}

/**
 * Serves `Messaging.OpenMessageStream` over a WebSocket on the sandbox's HTTP
 * server. Returns a function that closes every open stream.
 *
 * Each connection carries one RPC, framed as `RpcStream` in
 * `@code-wallet/rpc` 1.3 frames it: the client sends a binary
 * `Common.Request` and receives binary `Common.Response` frames. Besides the
 * message stream, `Messaging.ackMessages` is handled here and any other
 * unary method is forwarded to the unary endpoint, because the elements
 * pages of Code's SDK call `getStatus` and `sendMessage` over the WebSocket.
 */
export function attachMessageStream(
  server: HttpServer,
  context: SandboxContext,
  options: MessageStreamOptions = {},
): () => Promise<void> {
  const path = options.path ?? '/v1/ws';
  const paths = new Set([path, ...(options.aliasPaths ?? [`/sdk${path}`])]);
  const unaryPath = options.unaryPath ?? '/v1/api/';

  const registry: StreamRegistry = {
    context,
    logger: options.logger ?? pino({ name: 'sandbox-stream' }),
    streamTimeoutMs: options.streamTimeoutMs ?? DEFAULT_STREAM_TIMEOUT_MS,
    unaryUrl: () => `${loopbackBaseUrl(server)}${unaryPath}`,
    openStreams: new Map(),
    ackedMessageIds: new Map(),
  };

  const webSockets = new WebSocketServer({ noServer: true, maxPayload: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES });

  webSockets.on('connection', (socket: WebSocket) => {
    handleConnection(socket, registry);
  });

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const pathname = new URL(request.url ?? '/', 'http://sandbox.invalid').pathname;

    if (paths.has(pathname)) {
      webSockets.handleUpgrade(request, socket, head, (webSocket) => {
        webSockets.emit('connection', webSocket, request);
      });
      return;
    }

    // Another upgrade listener may serve this path, so respond 404 only when none exists.
    if (server.listenerCount('upgrade') === 1) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
    }
  };
  server.on('upgrade', onUpgrade);

  return async () => {
    server.off('upgrade', onUpgrade);

    for (const client of webSockets.clients) {
      client.terminate();
    }

    await new Promise<void>((resolve) => webSockets.close(() => resolve()));
  };
}

function handleConnection(socket: WebSocket, registry: StreamRegistry): void {
  let handled = false;

  socket.on('message', (data: RawData, isBinary: boolean) => {
    if (handled) {
      // An RPC over this endpoint has exactly one request frame.
      registry.logger.warn({ method: 'OpenMessageStream' }, 'ignored an extra frame after the request');
      return;
    }
    handled = true;

    const request = parseRequestFrame(data, isBinary);
    if (typeof request === 'string') {
      rejectAndClose(socket, registry.logger, request, {});
      return;
    }

    if (request.service === 'Messaging' && request.method === 'openMessageStream') {
      openMessageStream(socket, request.body, registry);
    } else if (request.service === 'Messaging' && request.method === 'ackMessages') {
      ackMessages(socket, request.body, registry);
    } else {
      void forwardUnary(socket, request, registry);
    }
  });

  socket.on('error', (error: Error) => {
    registry.logger.warn({ err: error }, 'message stream socket failed');
  });
}

/** Parses a client frame, or returns the rejection message when it is not a `Common.Request`. */
function parseRequestFrame(data: RawData, isBinary: boolean): proto.Common.Request | string {
  if (!isBinary) {
    return 'invalid frame: expected a binary Common.Request protobuf, got a text frame';
  }

  try {
    const request = proto.Common.Request.fromBinary(rawDataBytes(data));
    if (!request.service || !request.method) {
      return 'invalid frame: Common.Request is missing its service or method';
    }
    return request;
  } catch (error) {
    return `invalid frame: not a Common.Request protobuf (${(error as Error).message})`;
  }
}

function openMessageStream(socket: WebSocket, body: Uint8Array, registry: StreamRegistry): void {
  const request = parseOpenMessageStreamRequest(body);
  if (typeof request === 'string') {
    rejectAndClose(socket, registry.logger, request, { method: 'OpenMessageStream' });
    return;
  }

  const intentId = bs58.encode(request.rendezvousKey!.value);
  const logger = registry.logger.child({ method: 'OpenMessageStream', intentId });

  if (!isSignatureValid(request)) {
    rejectAndClose(
      socket,
      logger,
      'unauthenticated: the signature does not verify; sign the OpenMessageStreamRequest bytes ' +
        'with the signature field unset, using the rendezvous private key',
      {},
    );
    return;
  }

  if (registry.openStreams.has(intentId)) {
    rejectAndClose(socket, logger, 'aborted: a message stream is already open for this rendezvous key', {});
    return;
  }
  registry.openStreams.set(intentId, socket);

  const sentKinds = new Set<StreamMessageKind>();
  const acked = registry.ackedMessageIds.get(intentId);

  const deliver = (kinds: StreamMessageKind[]): void => {
    const intent = registry.context.getIntent(intentId);
    if (!intent) {
      return;
    }

    for (const kind of kinds) {
      if (sentKinds.has(kind) || acked?.has(hex(messageIdFor(intentId, kind)))) {
        continue;
      }
      sentKinds.add(kind);

      const response = new proto.OpenMessageStreamResponse({ messages: [buildStreamMessage(intent, kind)] });
      sendResponse(socket, response.toBinary());
      logger.debug({ kind }, 'delivered message');
    }
  };

  // Subscribe before reading the current state, so no event falls between the two.
  const unsubscribe = registry.context.onIntentEvent((event: SandboxIntentEvent) => {
    if (event.intent.intentId === intentId) {
      deliver(messageKindsForEvent(event.type));
    }
  });

  const current = registry.context.getIntent(intentId);
  if (current) {
    deliver(messageKindsForIntent(current));
  }

  const timeout = setTimeout(() => {
    logger.info({ timeoutMs: registry.streamTimeoutMs }, 'message stream timed out');
    sendError(socket, `deadline exceeded: message streams end after ${registry.streamTimeoutMs} ms; open a new one`);
    socket.close(1000, 'stream timed out');
  }, registry.streamTimeoutMs);
  timeout.unref();

  socket.on('close', () => {
    clearTimeout(timeout);
    unsubscribe();
    if (registry.openStreams.get(intentId) === socket) {
      registry.openStreams.delete(intentId);
    }
    logger.debug('message stream closed');
  });

  logger.info({ intentKnown: current !== undefined }, 'message stream opened');
}

function parseOpenMessageStreamRequest(body: Uint8Array): proto.OpenMessageStreamRequest | string {
  let request: proto.OpenMessageStreamRequest;
  try {
    request = proto.OpenMessageStreamRequest.fromBinary(body);
  } catch (error) {
    return `invalid OpenMessageStreamRequest: ${(error as Error).message}`;
  }

  if (request.rendezvousKey?.value.length !== ED25519_PUBLIC_KEY_BYTES) {
    return 'invalid OpenMessageStreamRequest: rendezvous_key must be a 32-byte Ed25519 public key';
  }

  if (request.signature && request.signature.value.length !== ED25519_SIGNATURE_BYTES) {
    return 'invalid OpenMessageStreamRequest: signature must be 64 bytes';
  }

  return request;
}

/**
 * Verifies the rendezvous key's signature over the request with its
 * signature field unset, as code-server's RPC signature verifier does. Like
 * code-server, a request without a signature is accepted, because the
 * elements pages of Code's SDK open the stream unsigned.
 */
function isSignatureValid(request: proto.OpenMessageStreamRequest): boolean {
  if (!request.signature) {
    return true;
  }

  const unsigned = request.clone();
  unsigned.signature = undefined;

  try {
    return ed25519.verify(request.signature.value, unsigned.toBinary(), request.rendezvousKey!.value);
  } catch {
    return false;
  }
}

/**
 * Records acknowledged message ids, so later streams of the same rendezvous
 * key skip them, as Code's server deletes acknowledged messages.
 */
function ackMessages(socket: WebSocket, body: Uint8Array, registry: StreamRegistry): void {
  let request: proto.AckMessagesRequest;
  try {
    request = proto.AckMessagesRequest.fromBinary(body);
  } catch (error) {
    rejectAndClose(socket, registry.logger, `invalid AckMessagesRequest: ${(error as Error).message}`, {
      method: 'AckMessages',
    });
    return;
  }

  if (request.rendezvousKey?.value.length !== ED25519_PUBLIC_KEY_BYTES) {
    rejectAndClose(
      socket,
      registry.logger,
      'invalid AckMessagesRequest: rendezvous_key must be a 32-byte Ed25519 public key',
      { method: 'AckMessages' },
    );
    return;
  }

  const intentId = bs58.encode(request.rendezvousKey.value);
  const acked = registry.ackedMessageIds.get(intentId) ?? new Set<string>();
  for (const messageId of request.messageIds) {
    acked.add(hex(messageId.value));
  }
  registry.ackedMessageIds.set(intentId, acked);

  sendResponse(socket, new proto.AckMesssagesResponse({}).toBinary());
  registry.logger.debug({ method: 'AckMessages', intentId, count: request.messageIds.length }, 'acknowledged messages');
}

/** Forwards a unary RPC frame to the sandbox's unary endpoint and relays its response. */
async function forwardUnary(socket: WebSocket, request: proto.Common.Request, registry: StreamRegistry): Promise<void> {
  const logger = registry.logger.child({ service: request.service, method: request.method });

  try {
    const response = await fetch(registry.unaryUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.from(request.toBinary()),
    });

    if (!response.ok) {
      rejectAndClose(socket, logger, `unary endpoint answered HTTP ${response.status}`, {});
      return;
    }

    sendFrame(socket, new Uint8Array(await response.arrayBuffer()));
  } catch (error) {
    logger.error({ err: error }, 'forwarding a unary RPC failed');
    sendError(socket, `internal: forwarding ${request.service}.${request.method} failed`);
    socket.close(1011, 'forwarding failed');
  }
}

function rejectAndClose(socket: WebSocket, logger: Logger, message: string, fields: Record<string, string>): void {
  logger.warn(fields, `rejected a message stream request: ${message}`);
  sendError(socket, message);
  socket.close(1008, 'request rejected');
}

function sendResponse(socket: WebSocket, body: Uint8Array): void {
  sendFrame(socket, new proto.Common.Response({ result: proto.Common.Response_Result.OK, body }).toBinary());
}

function sendError(socket: WebSocket, message: string): void {
  sendFrame(socket, new proto.Common.Response({ result: proto.Common.Response_Result.ERROR, message }).toBinary());
}

function sendFrame(socket: WebSocket, bytes: Uint8Array): void {
  if (socket.readyState === socket.OPEN) {
    socket.send(bytes, { binary: true });
  }
}

function rawDataBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) {
    return new Uint8Array(Buffer.concat(data));
  }
  if (data instanceof ArrayBuffer) {
    return new Uint8Array(data);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Base URL of the server over loopback, for requests the sandbox sends to itself. */
function loopbackBaseUrl(server: HttpServer): string {
  const address = server.address() as AddressInfo;
  if (address.family === 'IPv6') {
    const host = address.address === '::' ? '::1' : address.address;
    return `http://[${host}]:${address.port}`;
  }
  const host = address.address === '0.0.0.0' ? '127.0.0.1' : address.address;
  return `http://${host}:${address.port}`;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
