// The sample game server as `npm start` runs it: a child process with the kit
// on a SQLite file in a temp dir and the sandbox sequencer in the same
// process, both on free loopback ports.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';

import Database from 'better-sqlite3';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CatalogAck, ClientToServerEvents, Purchase, PurchaseAck, ServerToClientEvents, SyncAck } from '../protocol/index.js';

type GameSocket = Socket<ServerToClientEvents, ClientToServerEvents>;
type ServerProcess = ChildProcessByStdio<null, Readable, Readable>;

interface StartedServer {
  child: ServerProcess;
  gameUrl: string;
  sandboxUrl: string;
  output: () => string;
}

const REPOSITORY_ROOT = path.resolve(import.meta.dirname, '..');
const MAIN = path.join(REPOSITORY_ROOT, 'sample-game', 'server', 'main.ts');

/** Starts `sample-game/server/main.ts` and resolves once it printed its URLs and `/healthz` returns 200. */
async function startServer(env: Record<string, string>): Promise<StartedServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    cwd: REPOSITORY_ROOT,
    env: { ...process.env, PORT: '0', SANDBOX_PORT: '0', HOST: '127.0.0.1', SAMPLE_GAME_BUILD: 'skip', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));

  const urls = await new Promise<{ gameUrl: string; sandboxUrl: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`The server printed no URLs within 45 s. Output:\n${output}`)), 45_000);
    const check = (): void => {
      const game = /Sample game:\s+(http:\/\/\S+)/.exec(output);
      const wallet = /Sandbox wallet:\s+(http:\/\/\S+)\/wallet/.exec(output);
      if (game && wallet) {
        clearTimeout(timer);
        resolve({ gameUrl: game[1]!.replace(/\/$/, ''), sandboxUrl: wallet[1]! });
      }
    };
    child.stdout.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`The server exited with code ${code} during start-up. Output:\n${output}`));
    });
  });

  const health = await fetch(`${urls.gameUrl}/healthz`);
  expect(health.status).toBe(200);

  return { child, ...urls, output: () => output };
}

function waitForExit(child: ServerProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

async function createGuest(gameUrl: string): Promise<{ playerId: string; token: string }> {
  const response = await fetch(`${gameUrl}/api/guest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  expect(response.status).toBe(201);
  return (await response.json()) as { playerId: string; token: string };
}

async function connect(gameUrl: string, token: string): Promise<GameSocket> {
  const socket: GameSocket = io(`${gameUrl}/code-pay`, {
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

/** Resolves with the connect error message, or rejects if the socket connects. */
function expectConnectError(gameUrl: string, auth: Record<string, unknown>): Promise<string> {
  const socket: GameSocket = io(`${gameUrl}/code-pay`, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => {
      socket.disconnect();
      reject(new Error('The socket connected with an invalid token.'));
    });
    socket.once('connect_error', (error) => {
      socket.disconnect();
      resolve(error.message);
    });
  });
}

async function purchase(socket: GameSocket, itemId: string, attemptId?: string): Promise<PurchaseAck> {
  const request = attemptId === undefined ? { itemId } : { itemId, attemptId };
  return socket.timeout(15_000).emitWithAck('purchase', request);
}

async function pay(sandboxUrl: string, intentId: string): Promise<void> {
  const response = await fetch(`${sandboxUrl}/control/intents/${intentId}/pay`, { method: 'POST' });
  expect(response.status).toBe(200);
}

/** Resolves with the granted purchase, from a `purchase:updated` push or from `sync`. */
async function waitForGranted(socket: GameSocket, purchaseId: string): Promise<Purchase> {
  const deadline = Date.now() + 30_000;
  let pushed: Purchase | undefined;
  const onUpdate = (update: Purchase): void => {
    if (update.id === purchaseId && update.state === 'granted') {
      pushed = update;
    }
  };
  socket.on('purchase:updated', onUpdate);

  try {
    while (Date.now() < deadline) {
      if (pushed !== undefined) {
        return pushed;
      }
      const sync: SyncAck = await socket.timeout(10_000).emitWithAck('sync');
      const found = sync.ok ? sync.purchases.find((entry) => entry.id === purchaseId) : undefined;
      if (found?.state === 'granted') {
        return found;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    socket.off('purchase:updated', onUpdate);
  }
  throw new Error(`Purchase ${purchaseId} was not granted within 30 s.`);
}

async function readInventory(gameUrl: string, token: string): Promise<{ playerId: string; items: Record<string, number>; soldOut: string[] }> {
  const response = await fetch(`${gameUrl}/api/inventory`, { headers: { authorization: `Bearer ${token}` } });
  expect(response.status).toBe(200);
  return (await response.json()) as { playerId: string; items: Record<string, number>; soldOut: string[] };
}

describe('sample game server', () => {
  let directory: string;
  let databaseFile: string;
  let server: StartedServer;
  const sockets: GameSocket[] = [];
  /** The guest that bought the golden ship, checked again after the restart. */
  let permanentBuyer: { playerId: string; token: string } | undefined;

  beforeAll(async () => {
    directory = mkdtempSync(path.join(tmpdir(), 'sample-server-'));
    databaseFile = path.join(directory, 'game.db');
    server = await startServer({ CODE_PAY_DATABASE_URL: databaseFile });
  });

  afterAll(async () => {
    for (const socket of sockets) {
      socket.disconnect();
    }
    if (server !== undefined && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill('SIGKILL');
      await waitForExit(server.child);
    }
    rmSync(directory, { recursive: true, force: true });
  });

  it('returns healthz once started', async () => {
    const response = await fetch(`${server.gameUrl}/healthz`);
    expect(response.status).toBe(200);
  });

  it('publishes the sandbox wallet URL', async () => {
    const response = await fetch(`${server.gameUrl}/api/config`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ sandbox: { walletUrl: `${server.sandboxUrl}/wallet` } });
  });

  it('issues guest tokens', async () => {
    const guest = await createGuest(server.gameUrl);
    expect(guest.playerId).toMatch(/^guest_[0-9a-f-]{36}$/);
    expect(guest.token.split('.')).toHaveLength(3);

    const inventory = await readInventory(server.gameUrl, guest.token);
    expect(inventory.playerId).toBe(guest.playerId);
    expect(inventory.items).toEqual({});
  });

  it('rejects guest requests with a body', async () => {
    const extraField = await fetch(`${server.gameUrl}/api/guest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ playerId: 'guest_chosen-by-client' }),
    });
    expect(extraField.status).toBe(400);
    expect(((await extraField.json()) as { error: { code: string } }).error.code).toBe('invalid_request');

    const malformed = await fetch(`${server.gameUrl}/api/guest`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"unterminated',
    });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe('invalid_request');
  });

  it('rejects bad tokens on HTTP', async () => {
    const guest = await createGuest(server.gameUrl);
    const [header, payload, signature] = guest.token.split('.');
    const forgedSignature = `${signature!.slice(0, -2)}${signature!.endsWith('AA') ? 'BB' : 'AA'}`;
    const otherSubject = Buffer.from(JSON.stringify({ sub: `guest_${randomUUID()}` })).toString('base64url');

    const badHeaders = [
      undefined,
      'Bearer ',
      'Bearer not-a-token',
      `Basic ${guest.token}`,
      `Bearer ${header}.${payload}.${forgedSignature}`,
      `Bearer ${header}.${otherSubject}.${signature}`,
      `Bearer ${header}.${payload}.`,
    ];
    for (const authorization of badHeaders) {
      const response = await fetch(`${server.gameUrl}/api/inventory`, {
        headers: authorization === undefined ? {} : { authorization },
      });
      expect(response.status, `Authorization: ${authorization}`).toBe(401);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('unauthenticated');
    }
  });

  it('rejects bad tokens on the socket', async () => {
    const guest = await createGuest(server.gameUrl);
    const tampered = `${guest.token.slice(0, -3)}abc`;

    await expect(expectConnectError(server.gameUrl, {})).resolves.toBeTypeOf('string');
    await expect(expectConnectError(server.gameUrl, { token: '' })).resolves.toBeTypeOf('string');
    await expect(expectConnectError(server.gameUrl, { token: 'garbage' })).resolves.toBeTypeOf('string');
    await expect(expectConnectError(server.gameUrl, { token: tampered })).resolves.toBeTypeOf('string');
    await expect(expectConnectError(server.gameUrl, { token: 42 })).resolves.toBeTypeOf('string');
  });

  it('sends a catalog of three items', async () => {
    const guest = await createGuest(server.gameUrl);
    const socket = await connect(server.gameUrl, guest.token);
    sockets.push(socket);

    const ack: CatalogAck = await socket.timeout(10_000).emitWithAck('catalog');
    expect(ack.ok).toBe(true);
    if (!ack.ok) return;

    expect(ack.items).toHaveLength(3);
    expect(ack.items.map((item) => item.kind).sort()).toEqual(['consumable', 'permanent', 'unique']);
    for (const item of ack.items) {
      expect(item.currency).toBe('usd');
      expect(item.amount).toBeGreaterThanOrEqual(0.05);
      expect(item.amount).toBeLessThanOrEqual(1);
    }
  });

  it('grants a paid permanent item into its table', async () => {
    const guest = await createGuest(server.gameUrl);
    permanentBuyer = guest;
    const socket = await connect(server.gameUrl, guest.token);
    sockets.push(socket);

    const ack = await purchase(socket, 'golden-ship');
    expect(ack.ok, JSON.stringify(ack)).toBe(true);
    if (!ack.ok) return;
    expect(ack.purchase.state).toBe('pending');

    await pay(server.sandboxUrl, ack.purchase.intentId);
    const granted = await waitForGranted(socket, ack.purchase.id);
    expect(granted.state).toBe('granted');

    const inventory = await readInventory(server.gameUrl, guest.token);
    expect(inventory.items['golden-ship']).toBe(1);

    const database = new Database(databaseFile, { readonly: true, fileMustExist: true });
    try {
      const row = database
        .prepare('SELECT quantity FROM sample_inventory WHERE player_id = ? AND item_id = ?')
        .get(guest.playerId, 'golden-ship') as { quantity: number } | undefined;
      expect(row?.quantity).toBe(1);

      const grants = database.prepare('SELECT purchase_id FROM sample_grants WHERE player_id = ?').all(guest.playerId);
      expect(grants).toEqual([{ purchase_id: ack.purchase.id }]);
    } finally {
      database.close();
    }

    const again = await purchase(socket, 'golden-ship');
    expect(again.ok).toBe(false);
    if (!again.ok) {
      expect(again.error.code).toBe('already_owned');
    }
  });

  it('grants each consumable purchase and uses one', async () => {
    const guest = await createGuest(server.gameUrl);
    const socket = await connect(server.gameUrl, guest.token);
    sockets.push(socket);

    for (let round = 0; round < 2; round++) {
      const ack = await purchase(socket, 'extra-lives', randomUUID());
      expect(ack.ok, JSON.stringify(ack)).toBe(true);
      if (!ack.ok) return;
      await pay(server.sandboxUrl, ack.purchase.intentId);
      await waitForGranted(socket, ack.purchase.id);
    }
    expect((await readInventory(server.gameUrl, guest.token)).items['extra-lives']).toBe(2);

    const consume = (): Promise<Response> =>
      fetch(`${server.gameUrl}/api/inventory/consume`, {
        method: 'POST',
        headers: { authorization: `Bearer ${guest.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ itemId: 'extra-lives' }),
      });

    const first = await consume();
    expect(first.status).toBe(200);
    expect(((await first.json()) as { items: Record<string, number> }).items['extra-lives']).toBe(1);
    expect((await consume()).status).toBe(200);

    const empty = await consume();
    expect(empty.status).toBe(409);
    expect(((await empty.json()) as { error: { code: string } }).error.code).toBe('not_found');
    expect((await readInventory(server.gameUrl, guest.token)).items['extra-lives']).toBeUndefined();
  });

  it('rejects consuming a non-consumable', async () => {
    const guest = await createGuest(server.gameUrl);
    const response = await fetch(`${server.gameUrl}/api/inventory/consume`, {
      method: 'POST',
      headers: { authorization: `Bearer ${guest.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ itemId: 'golden-ship' }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('unknown_item');
  });

  it('sells the unique item once', async () => {
    const owner = await createGuest(server.gameUrl);
    const rival = await createGuest(server.gameUrl);
    const ownerSocket = await connect(server.gameUrl, owner.token);
    const rivalSocket = await connect(server.gameUrl, rival.token);
    sockets.push(ownerSocket, rivalSocket);

    const held = await purchase(ownerSocket, 'star-crown');
    expect(held.ok, JSON.stringify(held)).toBe(true);
    if (!held.ok) return;

    const reserved = await purchase(rivalSocket, 'star-crown');
    expect(reserved.ok).toBe(false);
    if (!reserved.ok) {
      expect(reserved.error.code).toBe('reserved');
    }

    await pay(server.sandboxUrl, held.purchase.intentId);
    await waitForGranted(ownerSocket, held.purchase.id);

    const soldOut = await purchase(rivalSocket, 'star-crown');
    expect(soldOut.ok).toBe(false);
    if (!soldOut.ok) {
      expect(soldOut.error.code).toBe('sold_out');
    }

    expect((await readInventory(server.gameUrl, owner.token)).items['star-crown']).toBe(1);
    expect((await readInventory(server.gameUrl, owner.token)).soldOut).toEqual([]);
    expect((await readInventory(server.gameUrl, rival.token)).soldOut).toEqual(['star-crown']);
  });

  it('stops cleanly on SIGTERM', async () => {
    server.child.kill('SIGTERM');
    const exit = await waitForExit(server.child);
    expect(exit.code).toBe(0);
    expect(server.output()).toContain('"msg":"stopped"');
  });

  it('keeps guests and items across a restart', async () => {
    expect(permanentBuyer).toBeDefined();
    server = await startServer({ CODE_PAY_DATABASE_URL: databaseFile });

    const inventory = await readInventory(server.gameUrl, permanentBuyer!.token);
    expect(inventory.playerId).toBe(permanentBuyer!.playerId);
    expect(inventory.items['golden-ship']).toBe(1);

    const socket = await connect(server.gameUrl, permanentBuyer!.token);
    sockets.push(socket);
    const again = await purchase(socket, 'golden-ship');
    expect(again.ok).toBe(false);
    if (!again.ok) {
      expect(again.error.code).toBe('already_owned');
    }
  });
});

describe('sample game server configuration', () => {
  const cases: Array<[string, Record<string, string>]> = [
    ['PORT', { PORT: 'eighty' }],
    ['SANDBOX_PORT', { SANDBOX_PORT: '70000' }],
    ['CODE_SEQUENCER_PUBLIC_KEY', { CODE_SEQUENCER_URL: 'http://127.0.0.1:9/v1' }],
    ['CODE_SEQUENCER_URL', { CODE_SEQUENCER_URL: 'ftp://127.0.0.1/v1', CODE_SEQUENCER_PUBLIC_KEY: 'x' }],
    ['CODE_PAY_DESTINATION', { CODE_PAY_DESTINATION: 'not-base58-0OIl' }],
    ['CODE_PAY_WEBHOOK_URL', { CODE_PAY_WEBHOOK_URL: 'not a url' }],
    ['CODE_PAY_DATABASE_URL', { CODE_PAY_DATABASE_URL: 'mysql://127.0.0.1/game' }],
  ];

  it.each(cases)('rejects an invalid %s', async (variable, env) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
      cwd: REPOSITORY_ROOT,
      env: { ...process.env, PORT: '0', SANDBOX_PORT: '0', SAMPLE_GAME_BUILD: 'skip', CODE_PAY_DATABASE_URL: path.join(tmpdir(), 'unused.db'), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));

    const exit = await waitForExit(child);
    expect(exit.code).toBe(2);
    expect(stderr).toContain(`Invalid configuration: ${variable} `);
  });

  it('names PORT when the port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()));
    const takenPort = (blocker.address() as AddressInfo).port;
    const directory = mkdtempSync(path.join(tmpdir(), 'sample-port-'));

    try {
      const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
        cwd: REPOSITORY_ROOT,
        env: {
          ...process.env,
          PORT: String(takenPort),
          SANDBOX_PORT: '0',
          SAMPLE_GAME_BUILD: 'skip',
          CODE_PAY_DATABASE_URL: path.join(directory, 'game.db'),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));

      const exit = await waitForExit(child);
      expect(exit.code).toBe(1);
      expect(stderr).toContain(`failed to listen on 127.0.0.1:${takenPort}`);
      expect(stderr).toContain('Set PORT to a free port');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
      rmSync(directory, { recursive: true, force: true });
    }
  });
});
