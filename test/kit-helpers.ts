// Shared set-up for the kit suites: a sandbox sequencer on a loopback port, a
// temp dir for SQLite files, kit instances with short polling intervals, an
// Express + socket.io server around a kit, and the sandbox's control API.

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ed25519 } from '@noble/curves/ed25519';
import bs58 from 'bs58';
import express from 'express';
import { pino } from 'pino';
import { Server as SocketServer } from 'socket.io';
import { io as connectClient, type Socket as ClientSocket } from 'socket.io-client';

import { CODE_PAY_NAMESPACE, type ClientToServerEvents, type ServerToClientEvents } from '../protocol/index.js';
import { createCodePay, type CodePay, type CodePayOptions, type StoredPurchase } from '../server/index.js';
import { startSandbox, type SandboxHandle } from '../server/sandbox/index.js';

export const silentLogger = pino({ level: process.env.KIT_TEST_LOG_LEVEL ?? 'silent' });

export const CATALOG: CodePayOptions['catalog'] = [
  { id: 'sword', kind: 'permanent', name: 'Sword', amount: 0.25, currency: 'usd' },
  { id: 'gems-10', kind: 'consumable', name: '10 gems', amount: 0.1, currency: 'usd' },
  { id: 'crown', kind: 'unique', name: 'The crown', amount: 0.5, currency: 'usd' },
];

/** A fixed test secret of 32 random-looking bytes, so two kit instances derive the same keys. */
export const KEY_SECRET = 'b3f1c2d4e5a6978812ab34cd56ef7890a1b2c3d4e5f60718293a4b5c6d7e8f90';

export function randomAddress(): string {
  return bs58.encode(ed25519.getPublicKey(ed25519.utils.randomSecretKey()));
}

export function makeTempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'kit-test-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function startTestSandbox(dir: string): Promise<SandboxHandle> {
  return startSandbox({ host: '127.0.0.1', port: 0, dataFile: join(dir, 'sandbox.db'), timeScale: 0.001, logger: silentLogger });
}

/** Records every call of the grant handler; `failures` makes the next calls throw. */
export class GrantRecorder {
  readonly granted: StoredPurchase[] = [];
  failures = 0;
  calls = 0;

  readonly handler = async (purchase: StoredPurchase): Promise<void> => {
    this.calls += 1;
    if (this.failures > 0) {
      this.failures -= 1;
      throw new Error('inventory service is down');
    }
    this.granted.push(purchase);
  };

  countFor(purchaseId: string): number {
    return this.granted.filter((purchase) => purchase.id === purchaseId).length;
  }
}

export interface KitOptionsInput {
  sandbox: SandboxHandle;
  dbFile: string;
  destination: string;
  grants: GrantRecorder;
  overrides?: Partial<CodePayOptions>;
}

/** Kit options for tests: sandbox sequencer, token = player id, fast polling. */
export function kitOptions({ sandbox, dbFile, destination, grants, overrides = {} }: KitOptionsInput): CodePayOptions {
  return {
    gameId: 'test-game',
    catalog: CATALOG,
    destination,
    keySecret: KEY_SECRET,
    store: { sqlite: dbFile },
    sequencer: { endpoint: sandbox.endpoint, publicKey: sandbox.publicKey, timeoutMs: 2_000 },
    authenticate: (handshake) => {
      const token: unknown = handshake.auth.token;
      if (typeof token !== 'string' || !token.startsWith('player:')) {
        throw new Error('invalid token');
      }
      return token.slice('player:'.length);
    },
    grant: grants.handler,
    logger: silentLogger,
    polling: {
      intervalMs: 20,
      firstCheckAfterMs: 20,
      maxCheckIntervalMs: 100,
      grantRetryFirstMs: 20,
      grantRetryMaxMs: 100,
    },
    ...overrides,
  };
}

/** An HTTP server on a loopback port that serves a kit's router and socket namespace once one is mounted. */
export interface KitServer {
  url: string;
  io: SocketServer;
  /** HTTP status of every webhook response, in order. */
  webhookStatuses: number[];
  /** Serves `kit.router()` and attaches the kit to `io`; the URL is known before the kit exists, for `webhookUrl`. */
  mount(kit: CodePay): void;
  close(): Promise<void>;
}

export async function startKitServer(kit?: CodePay): Promise<KitServer> {
  const app = express();
  let router: express.Router | undefined;
  const webhookStatuses: number[] = [];
  app.use((request, response, next) => {
    if (request.path === '/code-pay/webhook') {
      response.on('finish', () => webhookStatuses.push(response.statusCode));
    }
    if (router) {
      router(request, response, next);
      return;
    }
    next();
  });
  const http: HttpServer = createServer(app);
  const io = new SocketServer(http, { maxHttpBufferSize: 64 * 1024 });

  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;

  const server: KitServer = {
    url: `http://127.0.0.1:${port}`,
    io,
    webhookStatuses,
    mount(mounted) {
      router = mounted.router();
      mounted.attach(io);
    },
    close: async () => {
      await new Promise<void>((resolve) => {
        void io.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
  if (kit) {
    server.mount(kit);
  }
  return server;
}

export type TestClient = ClientSocket<ServerToClientEvents, ClientToServerEvents>;

/** Connects a socket.io client to the kit's namespace; rejects with the connect error. */
export function connectPlayer(url: string, token: unknown): Promise<TestClient> {
  const socket: TestClient = connectClient(`${url}${CODE_PAY_NAMESPACE}`, {
    auth: { token },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (error) => {
      socket.close();
      reject(error);
    });
  });
}

export async function controlPost(sandbox: SandboxHandle, path: string, body: unknown = {}): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${sandbox.url}/control${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

export async function payIntent(sandbox: SandboxHandle, intentId: string): Promise<void> {
  const result = await controlPost(sandbox, `/intents/${intentId}/pay`);
  if (result.status !== 200) {
    throw new Error(`sandbox pay of ${intentId} responded ${result.status}: ${JSON.stringify(result.body)}`);
  }
}

export async function setFaults(sandbox: SandboxHandle, faults: unknown): Promise<void> {
  const result = await controlPost(sandbox, '/faults', faults);
  if (result.status !== 200) {
    throw new Error(`sandbox faults responded ${result.status}: ${JSON.stringify(result.body)}`);
  }
}

export async function sandboxStats(sandbox: SandboxHandle): Promise<{ rpc: Record<string, number>; webhookDeliveries: number }> {
  const response = await fetch(`${sandbox.url}/control/stats`);
  return (await response.json()) as { rpc: Record<string, number>; webhookDeliveries: number };
}

export async function ledger(sandbox: SandboxHandle): Promise<Array<{ intentId: string; amount: number; currency: string; destination: string }>> {
  const response = await fetch(`${sandbox.url}/control/ledger`);
  const body = (await response.json()) as { entries: Array<{ intentId: string; amount: number; currency: string; destination: string }> };
  return body.entries;
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(description: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${description}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until the purchase reaches `state` in the kit's store. */
export function waitForState(kit: CodePay, purchaseId: string, state: StoredPurchase['state'], timeoutMs?: number): Promise<StoredPurchase> {
  return waitFor(
    `purchase ${purchaseId} to be ${state}`,
    async () => {
      const purchase = await kit.store.getById(purchaseId);
      return purchase?.state === state ? purchase : undefined;
    },
    timeoutMs,
  );
}

/** Sends a request and returns its acknowledgement. */
export function request<Response>(socket: TestClient, event: string, ...payload: unknown[]): Promise<Response> {
  return new Promise((resolve) => {
    (socket.emit as (event: string, ...args: unknown[]) => void)(event, ...payload, (response: Response) => resolve(response));
  });
}
