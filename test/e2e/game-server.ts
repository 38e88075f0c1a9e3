// The sample game server for the browser tests: `sample-game/server/main.ts`
// as a child process on loopback, with its SQLite files in a temp dir. The
// readers at the end count intents and charges through the sandbox's control
// API, and grants in the game's SQLite file.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

import Database from 'better-sqlite3';
import { pino } from 'pino';

import { ensureGameBuilt } from '../../sample-game/server/build.js';
import { ensureSandboxBundles } from '../sandbox-pages-bundles.js';

type ServerProcess = ChildProcessByStdio<null, Readable, Readable>;

export const REPOSITORY_ROOT = path.resolve(import.meta.dirname, '..', '..');
const MAIN = path.join(REPOSITORY_ROOT, 'sample-game', 'server', 'main.ts');

const BUILD_LOCK_DIR = path.join(REPOSITORY_ROOT, 'dist', '.sample-game-build.lock');
/** A build lock older than this is left over from a crashed run. */
const STALE_LOCK_MS = 300_000;

/**
 * Builds the game client into sample-game/dist/ when its sources changed, as
 * `npm start` does, and the sandbox's wallet and elements pages. Test files
 * run in parallel processes and Vite empties its output folder first, so a
 * lock folder makes them build one at a time.
 */
export async function buildGameOnce(): Promise<void> {
  await ensureSandboxBundles();

  mkdirSync(path.dirname(BUILD_LOCK_DIR), { recursive: true });
  while (!tryLock()) {
    await sleep(250);
  }
  try {
    await ensureGameBuilt('auto', pino({ level: 'warn' }));
  } finally {
    rmSync(BUILD_LOCK_DIR, { recursive: true, force: true });
  }
}

function tryLock(): boolean {
  try {
    mkdirSync(BUILD_LOCK_DIR);
    return true;
  } catch {
    const lock = statSync(BUILD_LOCK_DIR, { throwIfNoEntry: false });
    if (lock !== undefined && Date.now() - lock.mtimeMs > STALE_LOCK_MS) {
      rmSync(BUILD_LOCK_DIR, { recursive: true, force: true });
    }
    return false;
  }
}

/** Resolves with a TCP port that was free on 127.0.0.1 a moment ago. */
export async function findFreePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') {
    throw new Error('Could not read the port of a probe server.');
  }
  return address.port;
}

/** Creates a temp dir for one test file's databases; `remove()` deletes it. */
export function makeDataDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'code-pay-e2e-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Generates a random key secret in the format `CODE_PAY_KEY_SECRET` takes (hex of 32 bytes). */
export function randomKeySecret(): string {
  return randomBytes(32).toString('hex');
}

export interface GameServer {
  child: ServerProcess;
  /** The game's origin, without a trailing slash. */
  gameUrl: string;
  /** The in-process sandbox's base URL; undefined with an external sequencer. */
  sandboxUrl: string | undefined;
  /** Everything the process wrote to stdout and stderr so far. */
  output: () => string;
  /** Sends SIGTERM and waits for the exit. */
  stop: () => Promise<void>;
  /** Sends SIGKILL and waits for the exit: a crash, with no shutdown code running. */
  kill: () => Promise<void>;
}

/**
 * Starts the sample game server with `env` over loopback defaults (free
 * ports, no build) and resolves once it printed its URLs and `/healthz`
 * returns 200.
 */
export async function startGameServer(env: Record<string, string>): Promise<GameServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    cwd: REPOSITORY_ROOT,
    env: { ...process.env, PORT: '0', SANDBOX_PORT: '0', HOST: '127.0.0.1', SAMPLE_GAME_BUILD: 'skip', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));

  const urls = await new Promise<{ gameUrl: string; sandboxUrl: string | undefined }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`The game server printed no URL within 45 s. Output:\n${output}`)), 45_000);
    const check = (): void => {
      const game = /Sample game:\s+(http:\/\/\S+)/.exec(output);
      if (game === null || !output.includes('Webhook URL:')) {
        return;
      }
      const wallet = /Sandbox wallet:\s+(http:\/\/\S+)\/wallet/.exec(output);
      clearTimeout(timer);
      resolve({ gameUrl: game[1]!.replace(/\/$/, ''), sandboxUrl: wallet?.[1] });
    };
    child.stdout.on('data', check);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`The game server exited (code ${code}, signal ${signal}) during start-up. Output:\n${output}`));
    });
  });

  const health = await fetch(`${urls.gameUrl}/healthz`);
  if (health.status !== 200) {
    throw new Error(`GET /healthz returned ${health.status} after start-up. Output:\n${output}`);
  }

  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve();
    } else {
      child.once('exit', () => resolve());
    }
  });

  return {
    child,
    ...urls,
    output: () => output,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
    kill: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Reads `route` of the sandbox's control API as JSON; throws on a status other than 200. */
export async function controlGet<T>(sandboxUrl: string, route: string): Promise<T> {
  const response = await fetch(`${sandboxUrl}/control${route}`);
  if (response.status !== 200) {
    throw new Error(`GET /control${route} returned ${response.status}: ${await response.text()}`);
  }
  return (await response.json()) as T;
}

/** Sends a JSON body to the sandbox's control API; throws on a status other than 200. */
export async function controlSend(sandboxUrl: string, method: 'POST' | 'DELETE', route: string, body?: unknown): Promise<void> {
  const response = await fetch(`${sandboxUrl}/control${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status !== 200) {
    throw new Error(`${method} /control${route} returned ${response.status}: ${await response.text()}`);
  }
}

export interface SandboxIntent {
  intentId: string;
  status: string;
  amount: number;
  currency: string;
}

/** Lists every intent the sandbox stores, newest first. */
export async function listIntents(sandboxUrl: string): Promise<SandboxIntent[]> {
  const { intents } = await controlGet<{ intents: SandboxIntent[] }>(sandboxUrl, '/intents?limit=10000');
  return intents;
}

export interface LedgerEntry {
  intentId: string;
  amount: number;
  currency: string;
}

/** Lists every charge the sandbox wallet made, oldest first. */
export async function listCharges(sandboxUrl: string): Promise<LedgerEntry[]> {
  const { entries } = await controlGet<{ entries: LedgerEntry[] }>(sandboxUrl, '/ledger');
  return entries;
}

export interface GrantRow {
  purchase_id: string;
  player_id: string;
  item_id: string;
}

/** Reads the game's grant rows for `playerId` from its SQLite file, also while the server runs. */
export function readGrants(databaseFile: string, playerId: string): GrantRow[] {
  const database = new Database(databaseFile, { readonly: true, fileMustExist: true });
  try {
    return database
      .prepare('SELECT purchase_id, player_id, item_id FROM sample_grants WHERE player_id = ? ORDER BY granted_at')
      .all(playerId) as GrantRow[];
  } finally {
    database.close();
  }
}

/** Reads the quantity of `itemId` that `playerId` has in the game's inventory table. */
export function readQuantity(databaseFile: string, playerId: string, itemId: string): number {
  const database = new Database(databaseFile, { readonly: true, fileMustExist: true });
  try {
    const row = database
      .prepare('SELECT quantity FROM sample_inventory WHERE player_id = ? AND item_id = ?')
      .get(playerId, itemId) as { quantity: number } | undefined;
    return row?.quantity ?? 0;
  } finally {
    database.close();
  }
}
