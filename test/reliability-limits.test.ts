// The kit's limits: socket message size (socket.io's maxHttpBufferSize),
// webhook body size, per-player and per-connection request rates, and
// connections per address. Each is configurable and rejects with a clear error.

import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { createCodePay, type CodePay, type CodePayOptions } from '../server/index.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import {
  GrantRecorder,
  connectPlayer,
  kitOptions,
  makeTempDir,
  randomAddress,
  request,
  startKitServer,
  startTestSandbox,
  waitFor,
  type KitServer,
  type TestClient,
} from './kit-helpers.js';

let sandbox: SandboxHandle;
let temp: { dir: string; remove: () => void };
let counter = 0;
const kits: CodePay[] = [];
const servers: KitServer[] = [];
const sockets: TestClient[] = [];

async function startKit(overrides: Partial<CodePayOptions> = {}): Promise<{ kit: CodePay; server: KitServer }> {
  counter += 1;
  const kit = await createCodePay(
    kitOptions({
      sandbox,
      dbFile: join(temp.dir, `limits-${counter}.db`),
      destination: randomAddress(),
      grants: new GrantRecorder(),
      overrides: { gameId: `reliability-limits-${counter}`, ...overrides },
    }),
  );
  kits.push(kit);
  const server = await startKitServer(kit);
  servers.push(server);
  return { kit, server };
}

async function connect(url: string, player: string): Promise<TestClient> {
  const socket = await connectPlayer(url, `player:${player}`);
  sockets.push(socket);
  return socket;
}

type Ack = { ok: boolean; error?: { code: string; message: string } };

/** Every line a kit logged when a test passed `logger: pino({}, capture)`. */
const logLines: Array<{ level: number; msg: string; playerId?: string }> = [];
const capture = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString().split('\n')) {
      if (line.trim() !== '') {
        logLines.push(JSON.parse(line) as { level: number; msg: string; playerId?: string });
      }
    }
    done();
  },
});

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox(temp.dir);
});

afterEach(async () => {
  for (const socket of sockets.splice(0)) {
    socket.close();
  }
  await Promise.all(servers.splice(0).map((server) => server.close()));
  await Promise.all(kits.splice(0).map((kit) => kit.close()));
});

afterAll(async () => {
  await sandbox?.close();
  temp?.remove();
});

describe('request rates', () => {
  it('limits one connection before the player', async () => {
    const { server } = await startKit({ connectionRateLimit: { burst: 3, perSecond: 0.001 }, rateLimit: { burst: 100, perSecond: 0.001 } });
    const first = await connect(server.url, 'ann');
    const second = await connect(server.url, 'ann');

    const acks = await Promise.all(Array.from({ length: 5 }, () => request<Ack>(first, 'catalog')));
    expect(acks.filter((ack) => ack.ok).length).toBe(3);
    const limited = acks.filter((ack) => !ack.ok);
    expect(limited.every((ack) => ack.error?.code === 'rate_limited')).toBe(true);
    expect(limited[0]?.error?.message).toMatch(/on this connection/);

    // The player's other connection has its own budget.
    expect((await request<Ack>(second, 'catalog')).ok).toBe(true);
  });

  it('limits a player across connections', async () => {
    const { server } = await startKit({ connectionRateLimit: { burst: 100, perSecond: 0.001 }, rateLimit: { burst: 4, perSecond: 0.001 } });
    const first = await connect(server.url, 'bob');
    const second = await connect(server.url, 'bob');

    const acks = [
      ...(await Promise.all([1, 2].map(() => request<Ack>(first, 'sync')))),
      ...(await Promise.all([1, 2, 3].map(() => request<Ack>(second, 'sync')))),
    ];
    expect(acks.filter((ack) => ack.ok).length).toBe(4);
    const limited = acks.find((ack) => !ack.ok);
    expect(limited?.error?.code).toBe('rate_limited');
    expect(limited?.error?.message).toMatch(/from this player/);

    // Another player is not affected.
    expect((await request<Ack>(await connect(server.url, 'cat'), 'sync')).ok).toBe(true);
  });

  it('counts unknown events against the limit', async () => {
    const { server } = await startKit({ connectionRateLimit: { burst: 2, perSecond: 0.001 } });
    const socket = await connect(server.url, 'dan');
    const acks = await Promise.all([1, 2, 3].map(() => request<Ack>(socket, 'no-such-event')));
    expect(acks.map((ack) => ack.error?.code)).toEqual(['invalid_request', 'invalid_request', 'rate_limited']);
  });
});

describe('connections per address', () => {
  it('rejects connections beyond the limit', async () => {
    const { server } = await startKit({ maxConnectionsPerAddress: 3 });
    const open = await Promise.all([1, 2, 3].map((index) => connect(server.url, `eve-${index}`)));

    const error = await connectPlayer(server.url, 'player:eve-4').then(
      (socket) => {
        socket.close();
        return undefined;
      },
      (reason: unknown) => reason as Error & { data?: { code: string; message: string } },
    );
    expect(error?.data?.code).toBe('rate_limited');
    expect(error?.message).toMatch(/Too many connections/);

    // A closed connection frees its place.
    open[0]!.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const again = await connect(server.url, 'eve-5');
    expect(again.connected).toBe(true);
  });

  it('frees the place of a rejected token', async () => {
    const { server } = await startKit({ maxConnectionsPerAddress: 1 });
    for (let attempt = 0; attempt < 3; attempt += 1) {
      await expect(connectPlayer(server.url, 'not-a-player-token')).rejects.toThrow();
    }
    expect((await connect(server.url, 'fay')).connected).toBe(true);
  });

  it('rejects a limit that is not a positive whole number', async () => {
    await expect(startKit({ maxConnectionsPerAddress: 0 })).rejects.toThrow(/maxConnectionsPerAddress/);
    await expect(startKit({ connectionRateLimit: { burst: -1 } })).rejects.toThrow(/connectionRateLimit/);
  });
});

describe('message and body sizes', () => {
  it('closes only the connection of an oversized message', async () => {
    // startKitServer sets maxHttpBufferSize to 64 KiB, as docs/RELIABILITY.md recommends.
    const { kit, server } = await startKit({ logger: pino({ level: 'warn' }, capture) });
    const other = await connect(server.url, 'gus');
    const sender = await connect(server.url, 'hal');
    const closed = new Promise<string>((resolve) => sender.once('disconnect', (reason) => resolve(reason)));

    sender.emit('purchase', { itemId: 'sword', attemptId: 'x'.repeat(100 * 1024) } as never, () => undefined);
    expect(await closed).toMatch(/transport (close|error)/);

    expect((await request<Ack>(other, 'catalog')).ok).toBe(true);
    expect(await kit.listPurchases('hal')).toEqual([]);
    const logged = await waitFor('the transport error log line', () =>
      logLines.find((line) => line.msg.includes('maxHttpBufferSize') && line.playerId === 'hal'),
    );
    expect(logged.level).toBe(40);
  });

  it('answers an oversized webhook with 413 too_large', async () => {
    const { server } = await startKit({ webhookBodyLimit: 2_048 });
    const response = await fetch(`${server.url}/code-pay/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/jwt' },
      body: `${'a'.repeat(3_000)}.b.c`,
    });
    expect(response.status).toBe(413);
    expect(((await response.json()) as { error: { reason: string } }).error.reason).toBe('too_large');
  });

  it('accepts a purchase just under the limits', async () => {
    const { server } = await startKit();
    const socket = await connect(server.url, 'ivy');
    const ack = await request<Ack>(socket, 'purchase', { itemId: 'gems-10', attemptId: randomUUID() });
    expect(ack.ok).toBe(true);
  });
});
