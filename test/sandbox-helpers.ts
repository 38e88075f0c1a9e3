// Shared set-up for the sandbox suites: a sandbox on a loopback port with a
// data file in a temp dir, raw RPC envelopes, hand-signed payment requests
// and a webhook receiver with scripted status codes.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as proto from '@code-wallet/rpc';
import { ed25519 } from '@noble/curves/ed25519';
import bs58 from 'bs58';
import { pino } from 'pino';
import { startSandbox, type SandboxHandle, type SandboxOptions } from '../server/sandbox/index.js';

export const silentLogger = pino({ level: 'silent' });

/** Creates a temp dir and returns it with a function that removes it. */
export function makeTempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'sandbox-test-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Starts a sandbox on 127.0.0.1 with an ephemeral port. */
export function startTestSandbox(options: SandboxOptions & { dataFile: string }): Promise<SandboxHandle> {
  return startSandbox({ host: '127.0.0.1', port: 0, timeScale: 0.001, logger: silentLogger, ...options });
}

/** Returns a random base58 address, as a destination wallet. */
export function randomAddress(): string {
  return bs58.encode(ed25519.getPublicKey(ed25519.utils.randomSecretKey()));
}

/** POSTs raw bytes to the unary endpoint and returns the HTTP status and decoded envelope. */
export async function postRaw(
  endpoint: string,
  body: Uint8Array,
  contentType = 'application/octet-stream',
): Promise<{ status: number; envelope: proto.Common.Response }> {
  const response = await fetch(`${endpoint}/api/`, {
    method: 'POST',
    headers: { 'Content-Type': contentType },
    body: new Uint8Array(body),
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { status: response.status, envelope: proto.Common.Response.fromBinary(bytes) };
}

/** Sends one `Common.Request` envelope the way the official client does. */
export async function callRpc(
  endpoint: string,
  service: string,
  method: string,
  body: Uint8Array,
): Promise<{ status: number; envelope: proto.Common.Response }> {
  const request = new proto.Common.Request({ service, method, body });
  return postRaw(endpoint, request.toBinary());
}

export interface BillFields {
  destination: string;
  currency: string;
  amount: number;
  /** Exact exchange data, for kin. */
  exact?: { exchangeRate: number; quarks: bigint };
  fees?: Array<{ destination: string; basisPoints: number }>;
}

/** A rendezvous key pair that signs payment requests by hand. */
export class RendezvousSigner {
  readonly secretKey = ed25519.utils.randomSecretKey();
  readonly publicKey = ed25519.getPublicKey(this.secretKey);
  readonly intentId = bs58.encode(this.publicKey);

  /** Builds a SendMessageRequest with a RequestToReceiveBill signed by this key. */
  sendMessageRequest(fields: BillFields): proto.SendMessageRequest {
    const exchangeData = fields.exact
      ? {
          case: 'exact' as const,
          value: new proto.ExchangeData({
            currency: fields.currency,
            nativeAmount: fields.amount,
            exchangeRate: fields.exact.exchangeRate,
            quarks: fields.exact.quarks,
          }),
        }
      : {
          case: 'partial' as const,
          value: new proto.ExchangeDataWithoutRate({ currency: fields.currency, nativeAmount: fields.amount }),
        };
    const bill = new proto.RequestToReceiveBill({
      requestorAccount: new proto.Common.SolanaAccountId({ value: bs58.decode(fields.destination) }),
      exchangeData,
      additionalFees: (fields.fees ?? []).map(
        (fee) =>
          new proto.AdditionalFeePayment({
            destination: new proto.Common.SolanaAccountId({ value: bs58.decode(fee.destination) }),
            feeBps: fee.basisPoints,
          }),
      ),
    });
    const message = new proto.Message({ kind: { case: 'requestToReceiveBill', value: bill } });
    return new proto.SendMessageRequest({
      message,
      rendezvousKey: new proto.RendezvousKey({ value: this.publicKey }),
      signature: new proto.Common.Signature({ value: ed25519.sign(message.toBinary(), this.secretKey) }),
    });
  }
}

/** Sends a SendMessageRequest and returns the envelope. */
export function sendMessage(endpoint: string, request: proto.SendMessageRequest): Promise<{ status: number; envelope: proto.Common.Response }> {
  return callRpc(endpoint, 'Messaging', 'sendMessage', request.toBinary());
}

export interface ReceivedWebhook {
  body: string;
  contentType: string | undefined;
  receivedAt: number;
}

/**
 * An HTTP server on 127.0.0.1 that records every webhook POST and answers
 * with the next scripted status (200 once the script runs out).
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  private readonly statuses: number[];
  private readonly server: Server;
  private waiters: Array<{ count: number; resolve: () => void }> = [];
  url = '';

  constructor(statuses: number[] = []) {
    this.statuses = [...statuses];
    this.server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        this.received.push({
          body: Buffer.concat(chunks).toString('utf8'),
          contentType: request.headers['content-type'],
          receivedAt: Date.now(),
        });
        response.statusCode = this.statuses.shift() ?? 200;
        response.end();
        this.waiters = this.waiters.filter((waiter) => {
          if (this.received.length >= waiter.count) {
            waiter.resolve();
            return false;
          }
          return true;
        });
      });
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}/code-pay/webhook`;
    return this;
  }

  /** Resolves once `count` deliveries have arrived. */
  waitFor(count: number): Promise<void> {
    if (this.received.length >= count) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push({ count, resolve }));
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Sends a control API request and returns the status and parsed JSON. */
export async function control(
  sandbox: SandboxHandle,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: any }> {
  const response = await fetch(`${sandbox.url}/control${path}`, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, json: await response.json() };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
