// The unary RPC endpoint, `POST /v1/api/`: a binary `Common.Request`
// envelope in, a `Common.Response` envelope out. Protocol errors return HTTP
// 200 with an ERROR envelope, because the official client treats any other
// status as a network failure. Only an injected `unavailable` fault returns
// HTTP 503.
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as proto from '@code-wallet/rpc';
import type { Logger } from 'pino';
import type { FaultedRpc, FaultInjector } from './faults.js';
import { RpcError, type SandboxSequencer } from './sequencer.js';

/** Largest request body accepted; a SendMessage envelope is well under 1 KiB. */
export const MAX_RPC_BODY_BYTES = 64 * 1024;

const ACCEPTED_CONTENT_TYPES = new Set(['application/octet-stream', 'application/x-protobuf', 'application/protobuf']);

/** Counts RPC calls by `Service.Method`, including rejected and faulted ones. */
export class RpcStats {
  private readonly counts = new Map<string, number>();
  private webhookDeliveries = 0;

  countRpc(name: string): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
  }

  countWebhookDelivery(): void {
    this.webhookDeliveries += 1;
  }

  rpcCount(name: string): number {
    return this.counts.get(name) ?? 0;
  }

  snapshot(): { rpc: Record<string, number>; webhookDeliveries: number } {
    return { rpc: Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b))), webhookDeliveries: this.webhookDeliveries };
  }

  reset(): void {
    this.counts.clear();
    this.webhookDeliveries = 0;
  }
}

interface RpcMethod {
  name: string;
  fault?: FaultedRpc;
  /** Decodes the request body (throws on bad bytes) and returns the call that handles it. */
  decode: (body: Uint8Array) => () => Uint8Array;
}

export interface RpcHandlerOptions {
  sequencer: SandboxSequencer;
  faults: FaultInjector;
  stats: RpcStats;
  logger: Logger;
}

/** Upper-cases the first letter, so `sendMessage` (the official client's spelling) and `SendMessage` match. */
function pascalCase(name: string): string {
  return name.charAt(0).toUpperCase() + name.slice(1);
}

class BodyTooLargeError extends Error {}

function readBody(request: IncomingMessage, maxBytes: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        request.pause();
        reject(new BodyTooLargeError());
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
    request.on('error', reject);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function sendEnvelope(response: ServerResponse, envelope: proto.Common.Response, status = 200): void {
  const bytes = envelope.toBinary();
  response.writeHead(status, {
    'Content-Type': 'application/octet-stream',
    'Content-Length': bytes.length,
  });
  response.end(bytes);
}

function errorEnvelope(message: string): proto.Common.Response {
  return new proto.Common.Response({ result: proto.Common.Response_Result.ERROR, message });
}

/** Builds the request handler for `POST /v1/api/`. */
export function createRpcHandler(options: RpcHandlerOptions): (request: IncomingMessage, response: ServerResponse) => Promise<void> {
  const { sequencer, faults, stats, logger } = options;

  const methods = new Map<string, RpcMethod>();
  const register = (method: RpcMethod): void => {
    methods.set(method.name, method);
  };
  register({
    name: 'Messaging.SendMessage',
    fault: 'sendMessage',
    decode: (body) => {
      const request = proto.SendMessageRequest.fromBinary(body);
      return () => sequencer.sendMessage(request).toBinary();
    },
  });
  register({
    name: 'MicroPayment.GetStatus',
    fault: 'getStatus',
    decode: (body) => {
      const request = proto.GetStatusRequest.fromBinary(body);
      return () => new proto.GetStatusResponse(sequencer.getStatus(request)).toBinary();
    },
  });
  register({
    name: 'MicroPayment.RegisterWebhook',
    decode: (body) => {
      const request = proto.RegisterWebhookRequest.fromBinary(body);
      return () => new proto.RegisterWebhookResponse({ result: sequencer.registerWebhook(request) }).toBinary();
    },
  });

  const reject = (response: ServerResponse, message: string, context: Record<string, unknown> = {}): void => {
    logger.warn(context, `RPC rejected: ${message}`);
    sendEnvelope(response, errorEnvelope(message));
  };

  return async (request, response) => {
    const contentType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (!ACCEPTED_CONTENT_TYPES.has(contentType)) {
      request.resume();
      reject(response, `content type must be application/octet-stream (a binary Common.Request), got "${contentType || 'none'}"`);
      return;
    }

    let body: Uint8Array;
    try {
      body = await readBody(request, MAX_RPC_BODY_BYTES);
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        response.setHeader('Connection', 'close');
        reject(response, `request body exceeds the limit of ${MAX_RPC_BODY_BYTES} bytes`);
        return;
      }
      logger.warn({ err: error }, 'RPC request body could not be read');
      return;
    }

    let envelope: proto.Common.Request;
    try {
      envelope = proto.Common.Request.fromBinary(body);
    } catch (error) {
      reject(response, `body is not a valid Common.Request: ${(error as Error).message}`);
      return;
    }

    const name = `${envelope.service}.${pascalCase(envelope.method)}`;
    stats.countRpc(name);
    const method = methods.get(name);
    if (method === undefined) {
      const hint = name === 'Messaging.OpenMessageStream' ? '; open the message stream over the WebSocket at /v1/ws' : '';
      reject(response, `unknown method ${name || '(empty)'}: the sandbox serves ${[...methods.keys()].join(', ')}${hint}`, { method: name });
      return;
    }

    if (method.fault !== undefined) {
      const fault = faults.takeRpcFault(method.fault);
      await sleep(fault.delayMs);
      if (fault.fail === 'unavailable') {
        logger.info({ method: name }, 'RPC failed by fault injection with HTTP 503');
        sendEnvelope(response, errorEnvelope(`${name} failed by sandbox fault injection`), 503);
        return;
      }
      if (fault.fail === 'error') {
        logger.info({ method: name }, 'RPC failed by fault injection with an ERROR envelope');
        sendEnvelope(response, errorEnvelope(`Internal: ${name} failed by sandbox fault injection`));
        return;
      }
    }

    let handle: () => Uint8Array;
    try {
      handle = method.decode(envelope.body);
    } catch (error) {
      reject(response, `body of ${name} is not a valid request message: ${(error as Error).message}`, { method: name });
      return;
    }

    let responseBody: Uint8Array;
    try {
      responseBody = handle();
    } catch (error) {
      if (error instanceof RpcError) {
        reject(response, `${error.status}: ${error.message}`, { method: name });
        return;
      }
      logger.error({ method: name, err: error }, 'RPC handler failed');
      sendEnvelope(response, errorEnvelope(`Internal: ${name} failed: ${(error as Error).message}`));
      return;
    }

    sendEnvelope(response, new proto.Common.Response({ result: proto.Common.Response_Result.OK, body: responseBody }));
  };
}
