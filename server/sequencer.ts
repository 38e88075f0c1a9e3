// The kit's client for Code's sequencer: the three unary RPCs the kit needs
// (Messaging.SendMessage, MicroPayment.GetStatus, MicroPayment.RegisterWebhook)
// over the same wire format as `@code-wallet/client`: `POST {endpoint}/api/`
// with a protobuf `Common.Request` and a `Common.Response` in return.
//
// The kit does not call `@code-wallet/client` (2.0.8) itself, for three
// reasons. Its `createIntent` builds an error for a non-OK SendMessage result
// but never throws it. Its `paymentIntents.create({ webhook })` throws on
// ALREADY_REGISTERED and INTENT_EXISTS, so a retry of a purchase would fail.
// It decodes the envelope's body without checking for an ERROR result.
//
// Errors (see sequencer-errors.ts for the sources of the mapping):
// - `sequencer_rejected`: a SendMessage result other than OK, or an ERROR
//   envelope whose status code is a client error (invalid_argument, for
//   example an amount over the limit or a repeat with another amount;
//   unauthenticated; permission_denied; failed_precondition; ...). The
//   message is the sequencer's own. Repeating the same request cannot succeed.
// - `sequencer_unavailable`: a network error, a timeout, an HTTP status other
//   than 2xx, an ERROR envelope for a server failure (internal, unavailable,
//   unknown, or a message the kit does not recognise), or a response that does
//   not decode or fails the checks below. The same request is safe to retry,
//   because the sequencer accepts an identical repeat of a SendMessage.
import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';

import * as proto from '@code-wallet/rpc';
import bs58 from 'bs58';
import type { Logger } from 'pino';

import { CodePayError, type ErrorContext } from './errors.js';
import type { KitMetrics, SequencerMethod } from './metrics.js';
import { classifyErrorEnvelope } from './sequencer-errors.js';

export type RegisterWebhookResult = 'ok' | 'already_registered' | 'intent_exists' | 'request_not_found' | 'invalid_url';

export interface IntentStatus {
  /** The sequencer has stored the payment request. */
  exists: boolean;
  /** A wallet scanned the code. */
  codeScanned: boolean;
  /** A wallet submitted the payment: the intent is paid. */
  intentSubmitted: boolean;
}

export interface SequencerClientOptions {
  /** Base URL such as `https://cash.getcode.com/v1`; requests go to `${endpoint}/api/`. */
  endpoint: string;
  /** Time limit of one request, from connecting to the last byte of the response, in milliseconds. Default 10,000. */
  timeoutMs?: number;
  /** Maximum response body size in bytes. Default 1 MiB. */
  maxResponseBytes?: number;
  /** Most open connections to the sequencer at once; further requests queue. Default 64. */
  maxSockets?: number;
  logger?: Logger;
  metrics?: KitMetrics;
}

export interface SequencerClient {
  /** Sends a serialized `SendMessageRequest`; resolves only when the sequencer returns result OK. */
  sendMessage(sendMessageRequest: Uint8Array, ids: { intentId: string }): Promise<void>;
  getStatus(intentId: string): Promise<IntentStatus>;
  /**
   * Resolves with the registration result, including the four that are not
   * OK. Throws `sequencer_unavailable` for transport failures and malformed
   * responses, and `sequencer_rejected` only for an ERROR envelope that rejects
   * the request itself (for example an intent id the sequencer cannot parse).
   */
  registerWebhook(intentId: string, url: string): Promise<RegisterWebhookResult>;
  /** Closes the kept-alive connections. */
  close(): void;
}

export const DEFAULT_SEQUENCER_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024;
const DEFAULT_MAX_SOCKETS = 64;

const REGISTER_WEBHOOK_RESULTS: ReadonlyMap<proto.RegisterWebhookResponse_Result, RegisterWebhookResult> = new Map([
  [proto.RegisterWebhookResponse_Result.OK, 'ok'],
  [proto.RegisterWebhookResponse_Result.ALREADY_REGISTERED, 'already_registered'],
  [proto.RegisterWebhookResponse_Result.REQUEST_NOT_FOUND, 'request_not_found'],
  [proto.RegisterWebhookResponse_Result.INTENT_EXISTS, 'intent_exists'],
  [proto.RegisterWebhookResponse_Result.INVALID_URL, 'invalid_url'],
]);

/** Socket errors after which a request on a reused keep-alive connection is sent once more on a new one. */
const STALE_CONNECTION_ERRORS = new Set(['ECONNRESET', 'EPIPE']);

interface RawResponse {
  status: number;
  body: Buffer;
}

/** A response that arrived but cannot be used; becomes `sequencer_unavailable`. */
class MalformedResponseError extends Error {}

/** Normalizes the endpoint: an http or https URL without a trailing slash. */
function parseEndpoint(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new CodePayError('internal', `Invalid sequencer endpoint ${JSON.stringify(endpoint)}; expected a URL such as https://cash.getcode.com/v1.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CodePayError('internal', `Invalid sequencer endpoint ${endpoint}: the scheme must be http or https.`);
  }
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/api/`;
  return url;
}

/** Decodes a base58 intent id to its 32 key bytes, or throws `invalid_request`. */
function intentIdBytes(intentId: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = bs58.decode(intentId);
  } catch {
    throw new CodePayError('invalid_request', `Invalid intent id ${JSON.stringify(intentId)}: not base58.`, { intentId });
  }
  if (bytes.length !== 32) {
    throw new CodePayError('invalid_request', `Invalid intent id ${intentId}: decodes to ${bytes.length} bytes, expected 32.`, { intentId });
  }
  return bytes;
}

/** Creates a sequencer client with its own keep-alive connection pool. */
export function createSequencerClient(options: SequencerClientOptions): SequencerClient {
  const url = parseEndpoint(options.endpoint);
  const timeoutMs = options.timeoutMs ?? DEFAULT_SEQUENCER_TIMEOUT_MS;
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const logger = options.logger;
  const metrics = options.metrics;

  const transport = url.protocol === 'https:' ? https : http;
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? DEFAULT_MAX_SOCKETS };
  const agent = url.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions);

  /** Sends one POST; resolves with the status and body, rejects with the socket or timeout error. */
  function post(payload: Uint8Array, signal: AbortSignal): Promise<RawResponse & { reusedSocket: boolean }> {
    return new Promise((resolve, reject) => {
      const request = transport.request(url, {
        method: 'POST',
        agent,
        signal,
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': payload.byteLength,
        },
      });

      request.on('error', (error) => reject(Object.assign(error, { reusedSocket: request.reusedSocket })));
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        let received = 0;
        response.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > maxResponseBytes) {
            request.destroy(new MalformedResponseError(`the response is larger than ${maxResponseBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        response.on('end', () => {
          resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks), reusedSocket: request.reusedSocket });
        });
        response.on('error', reject);
      });

      request.end(payload);
    });
  }

  /** Sends with the time limit, and once more on a fresh connection when a reused one was already closed. */
  async function postWithTimeout(payload: Uint8Array): Promise<RawResponse> {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      return await post(payload, signal);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const reused = (error as { reusedSocket?: boolean }).reusedSocket === true;
      if (reused && code !== undefined && STALE_CONNECTION_ERRORS.has(code) && !signal.aborted) {
        return await post(payload, signal);
      }
      throw error;
    }
  }

  function unavailable(method: SequencerMethod, message: string, context: ErrorContext, cause?: unknown): CodePayError {
    return new CodePayError('sequencer_unavailable', message, { ...context, method }, { cause });
  }

  /** Converts a transport failure into `sequencer_unavailable` with a message naming the cause. */
  function transportError(method: SequencerMethod, error: unknown, context: ErrorContext): CodePayError {
    if (error instanceof MalformedResponseError) {
      return unavailable(method, `Malformed sequencer response to ${method}: ${error.message}.`, context, error);
    }

    const name = (error as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      return unavailable(
        method,
        `The sequencer at ${url.origin} timed out: no response to ${method} within ${timeoutMs} ms; retry later.`,
        context,
        error,
      );
    }

    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    return unavailable(
      method,
      `Could not reach the sequencer at ${url.origin} for ${method} (${code}); check the endpoint and retry later.`,
      context,
      error,
    );
  }

  /**
   * Sends one RPC and returns the body of an OK envelope. Throws
   * `sequencer_rejected` for an ERROR envelope that refuses the request and
   * `sequencer_unavailable` for everything else that is not an OK envelope.
   */
  async function call(
    service: 'Messaging' | 'MicroPayment',
    method: SequencerMethod,
    body: Uint8Array,
    context: ErrorContext,
  ): Promise<Uint8Array> {
    const envelope = new proto.Common.Request({ service, method, body });

    let raw: RawResponse;
    try {
      raw = await postWithTimeout(envelope.toBinary());
    } catch (error) {
      throw transportError(method, error, context);
    }

    let response: proto.Common.Response | undefined;
    try {
      response = proto.Common.Response.fromBinary(raw.body);
    } catch {
      response = undefined;
    }

    if (raw.status < 200 || raw.status > 299) {
      const detail = response?.message ? `: ${response.message}` : '';
      throw unavailable(method, `The sequencer returned HTTP ${raw.status} for ${method}${detail}; retry later.`, context);
    }

    if (response === undefined) {
      throw unavailable(
        method,
        `Malformed sequencer response to ${method}: the body (${raw.body.length} bytes) is not a Common.Response; check that the endpoint points at Code's API (for example https://cash.getcode.com/v1).`,
        context,
      );
    }

    if (response.result === proto.Common.Response_Result.ERROR) {
      const classified = classifyErrorEnvelope(response.message);
      const errorContext = { ...context, method, ...(classified.statusCode ? { statusCode: classified.statusCode } : {}) };
      if (classified.kind === 'rejected') {
        throw new CodePayError('sequencer_rejected', classified.message || `The sequencer rejected ${method}.`, errorContext);
      }
      const detail = classified.message ? `: ${classified.message}` : '';
      throw new CodePayError('sequencer_unavailable', `The sequencer failed to handle ${method}${detail}; retry later.`, errorContext);
    }

    if (response.result !== proto.Common.Response_Result.OK) {
      throw unavailable(method, `Malformed sequencer response to ${method}: unknown envelope result ${response.result}.`, context);
    }
    return response.body;
  }

  /** Decodes the inner response, or throws `sequencer_unavailable` naming the message type. */
  function decode<T>(method: SequencerMethod, typeName: string, body: Uint8Array, parse: (bytes: Uint8Array) => T, context: ErrorContext): T {
    try {
      return parse(body);
    } catch (error) {
      throw unavailable(method, `Malformed sequencer response to ${method}: the body does not decode as ${typeName}.`, context, error);
    }
  }

  /** Runs one RPC with its metrics and its single log line for a failure. */
  async function observe<T>(method: SequencerMethod, context: ErrorContext, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await run();
      metrics?.recordSequencerRequest(method, 'ok', (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      const seconds = (performance.now() - started) / 1000;
      if (error instanceof CodePayError && error.code === 'sequencer_rejected') {
        metrics?.recordSequencerRequest(method, 'rejected', seconds);
        logger?.info({ ...error.context, code: error.code, reason: error.message }, 'sequencer rejected the request');
      } else if (error instanceof CodePayError && error.code === 'sequencer_unavailable') {
        metrics?.recordSequencerRequest(method, 'unavailable', seconds);
        logger?.warn({ ...error.context, code: error.code, reason: error.message }, 'sequencer request failed');
      }
      throw error;
    }
  }

  return {
    async sendMessage(sendMessageRequest, ids) {
      const context = { intentId: ids.intentId };
      return observe('sendMessage', context, async () => {
        const body = await call('Messaging', 'sendMessage', sendMessageRequest, context);
        const decoded = decode('sendMessage', 'SendMessageResponse', body, (bytes) => proto.SendMessageResponse.fromBinary(bytes), context);

        if (decoded.result === proto.SendMessageResponse_Result.OK) {
          return;
        }
        if (decoded.result === proto.SendMessageResponse_Result.NO_ACTIVE_STREAM) {
          throw new CodePayError('sequencer_rejected', 'The sequencer rejected the payment request: no active stream (NO_ACTIVE_STREAM).', {
            ...context,
            method: 'sendMessage',
          });
        }
        throw unavailable('sendMessage', `Malformed sequencer response to sendMessage: unknown result ${decoded.result}.`, context);
      });
    },

    async getStatus(intentId) {
      const context = { intentId };
      const request = new proto.GetStatusRequest({ intentId: { value: intentIdBytes(intentId) } });
      return observe('getStatus', context, async () => {
        const body = await call('MicroPayment', 'getStatus', request.toBinary(), context);
        const decoded = decode('getStatus', 'GetStatusResponse', body, (bytes) => proto.GetStatusResponse.fromBinary(bytes), context);

        // code-server sets codeScanned and intentSubmitted only for a request it holds.
        if (!decoded.exists && (decoded.codeScanned || decoded.intentSubmitted)) {
          throw unavailable(
            'getStatus',
            `Malformed sequencer response to getStatus: the intent does not exist but is marked ${decoded.intentSubmitted ? 'submitted' : 'scanned'}.`,
            context,
          );
        }
        return { exists: decoded.exists, codeScanned: decoded.codeScanned, intentSubmitted: decoded.intentSubmitted };
      });
    },

    async registerWebhook(intentId, webhookUrl) {
      const context = { intentId };
      const request = new proto.RegisterWebhookRequest({ intentId: { value: intentIdBytes(intentId) }, url: webhookUrl });
      return observe('registerWebhook', context, async () => {
        const body = await call('MicroPayment', 'registerWebhook', request.toBinary(), context);
        const decoded = decode('registerWebhook', 'RegisterWebhookResponse', body, (bytes) => proto.RegisterWebhookResponse.fromBinary(bytes), context);

        const result = REGISTER_WEBHOOK_RESULTS.get(decoded.result);
        if (result === undefined) {
          throw unavailable('registerWebhook', `Malformed sequencer response to registerWebhook: unknown result ${decoded.result}.`, context);
        }
        return result;
      });
    },

    close() {
      agent.destroy();
    },
  };
}
