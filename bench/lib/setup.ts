// Starts the processes most benchmarks share: the sandbox sequencer, one kit
// instance and the official-examples server, each in its own child process,
// with data files in a fresh temporary folder. Also the socket.io client.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { io, type Socket } from 'socket.io-client';

import { CODE_PAY_NAMESPACE, type ClientToServerEvents, type ServerToClientEvents } from '../../protocol/index.js';
import type { KitChildConfig } from '../servers/kit-server.js';
import { startChild, type BenchChild } from './child.js';
import { BENCH_DESTINATION } from './constants.js';

export { BENCH_DESTINATION } from './constants.js';

export type PlayerSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface BenchFolder {
  path: string;
  remove(): void;
}

export function createBenchFolder(name: string): BenchFolder {
  const path = mkdtempSync(join(tmpdir(), `code-pay-bench-${name}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export async function startSandboxChild(folder: string, dataFile = join(folder, 'sandbox.db')): Promise<BenchChild> {
  return startChild('sandbox-server.ts', { dataFile, timeScale: 1 });
}

export async function startKitChild(
  sandbox: BenchChild,
  folder: string,
  options: Partial<KitChildConfig> = {},
  nodeOptions: string[] = [],
): Promise<BenchChild> {
  const config: KitChildConfig = {
    endpoint: String(sandbox.ready.endpoint),
    publicKey: String(sandbox.ready.publicKey),
    destination: BENCH_DESTINATION,
    sqliteFile: join(folder, 'kit.db'),
    logFile: join(folder, 'kit.log'),
    webhook: true,
    // The per-player limit (default a burst of 20 and 5 per second) would
    // reject most of the load with `rate_limited`, so the benchmark lifts it.
    rateLimit: { burst: 100_000, perSecond: 100_000 },
    // Every benchmark client connects from 127.0.0.1, as players behind one reverse proxy would.
    maxConnectionsPerAddress: 1_000_000,
    ...options,
  };
  return startChild('kit-server.ts', config as unknown as Record<string, unknown>, nodeOptions);
}

export async function startOfficialChild(sandbox: BenchChild): Promise<BenchChild> {
  return startChild('official-server.ts', { endpoint: String(sandbox.ready.endpoint), destination: BENCH_DESTINATION });
}

/** Connects one player socket to the kit's namespace over WebSocket and waits for the connection. */
export function connectPlayer(kitUrl: string, playerId: string): Promise<PlayerSocket> {
  const socket: PlayerSocket = io(`${kitUrl}${CODE_PAY_NAMESPACE}`, {
    auth: { token: playerId },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: 60_000,
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (error) => {
      socket.close();
      reject(error);
    });
  });
}

/** Returns a fresh attempt id that matches the protocol's pattern. */
let attemptCounter = 0;
export function newAttemptId(): string {
  attemptCounter++;
  return `bench-${process.pid}-${Date.now().toString(36)}-${attemptCounter}`;
}

/** POSTs JSON over loopback and returns the parsed response body; throws on a non-2xx status. */
export async function postJson(url: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`POST ${url} returned ${response.status}: ${text}`);
  }
  return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
}

export async function startStubSequencerChild(): Promise<BenchChild> {
  return startChild('stub-sequencer.ts', {});
}
