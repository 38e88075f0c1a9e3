// Helpers of the scale-out tests: sample-server processes on one PostgreSQL
// database, one Redis and one external sandbox, and socket clients of them.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import path from 'node:path';
import type { Readable } from 'node:stream';

import { createClient } from 'redis';
import { io, type Socket } from 'socket.io-client';

import type { ClientToServerEvents, Purchase, ServerToClientEvents } from '../protocol/index.js';

export type GameSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
export type ServerProcess = ChildProcessByStdio<null, Readable, Readable>;

export const REDIS_URL = process.env.CODE_PAY_TEST_REDIS ?? 'redis://127.0.0.1:6379';

const REPOSITORY_ROOT = path.resolve(import.meta.dirname, '..');
const MAIN = path.join(REPOSITORY_ROOT, 'sample-game', 'server', 'main.ts');

export async function isRedisReachable(url: string = REDIS_URL): Promise<boolean> {
  const client = createClient({ url, socket: { connectTimeout: 1_000, reconnectStrategy: false } });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    await client.close();
    return true;
  } catch {
    client.destroy();
    return false;
  }
}

export interface GameInstance {
  name: string;
  child: ServerProcess;
  /** Base URL without a trailing slash, for example http://127.0.0.1:40123. */
  url: string;
  output(): string;
}

/**
 * Starts `sample-game/server/main.ts` with `env` and resolves once `/healthz`
 * returns 200. `onSpawn` receives the process at once, before start-up ends.
 */
export async function startInstance(name: string, env: Record<string, string>, onSpawn?: (child: ServerProcess) => void): Promise<GameInstance> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    cwd: REPOSITORY_ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', SAMPLE_GAME_BUILD: 'skip', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onSpawn?.(child);

  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Instance ${name} printed no URL within 45 s. Output:\n${output}`)), 45_000);
    const check = (): void => {
      const game = /Sample game:\s+(http:\/\/\S+)/.exec(output);
      if (game) {
        clearTimeout(timer);
        resolve(game[1]!.replace(/\/$/, ''));
      }
    };
    child.stdout.on('data', check);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`Instance ${name} exited (code ${code}, signal ${signal}) during start-up. Output:\n${output}`));
    });
  });

  const health = await fetch(`${url}/healthz`);
  if (health.status !== 200) {
    throw new Error(`Instance ${name} returned ${health.status} from /healthz.`);
  }
  return { name, child, url, output: () => output };
}

/** Sends `signal` and waits for the process to exit. */
export async function stopInstance(instance: GameInstance, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const { child } = instance;
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await exited;
}

export async function createGuest(instance: GameInstance): Promise<{ playerId: string; token: string }> {
  const response = await fetch(`${instance.url}/api/guest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  if (response.status !== 201) {
    throw new Error(`POST /api/guest on ${instance.name} returned ${response.status}.`);
  }
  return (await response.json()) as { playerId: string; token: string };
}

export async function connect(instance: GameInstance, token: string): Promise<GameSocket> {
  const socket: GameSocket = io(`${instance.url}/code-pay`, {
    auth: { token },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (error) => reject(error));
  });
  return socket;
}

/** Resolves with the first `purchase:updated` push of `purchaseId` in `state`; only pushes count, never `sync`. */
export function waitForPush(socket: GameSocket, purchaseId: string, state: Purchase['state'], timeoutMs = 20_000): Promise<Purchase> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off('purchase:updated', onUpdate);
      reject(new Error(`No purchase:updated push with ${purchaseId} in state ${state} within ${timeoutMs} ms.`));
    }, timeoutMs);
    const onUpdate = (update: Purchase): void => {
      if (update.id === purchaseId && update.state === state) {
        clearTimeout(timer);
        socket.off('purchase:updated', onUpdate);
        resolve(update);
      }
    };
    socket.on('purchase:updated', onUpdate);
  });
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitUntil<T>(description: string, check: () => Promise<T | undefined>, timeoutMs = 20_000, stepMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) {
      return value;
    }
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${description}.`);
}
