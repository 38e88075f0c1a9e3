// Pushes across kit instances: two kits share one SQLite file and a Redis
// socket.io adapter, and a player connected to one instance hears about a
// purchase that the other instance created and confirmed. Needs Redis on
// 127.0.0.1:6379; the suite skips without it, except with CI=true.

import { randomUUID } from 'node:crypto';
import { join } from 'node:path';

import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Purchase } from '../protocol/index.js';
import { createCodePay, type CodePay } from '../server/index.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import {
  GrantRecorder,
  connectPlayer,
  kitOptions,
  makeTempDir,
  payIntent,
  randomAddress,
  startKitServer,
  startTestSandbox,
  waitFor,
  type KitServer,
} from './kit-helpers.js';

const REDIS_URL = process.env.CODE_PAY_TEST_REDIS ?? 'redis://127.0.0.1:6379';

async function redisAvailable(): Promise<boolean> {
  const client = createClient({ url: REDIS_URL, socket: { connectTimeout: 1_000, reconnectStrategy: false } });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    await client.close();
    return true;
  } catch {
    return false;
  }
}

const available = await redisAvailable();
if (!available && process.env.CI === 'true') {
  throw new Error(`Redis is not reachable at ${REDIS_URL} and CI=true: start redis-server to run the cross-instance push test.`);
}

if (!available) {
  console.warn(`Skipping the cross-instance push tests: Redis is not reachable at ${REDIS_URL} (set CODE_PAY_TEST_REDIS or start redis-server).`);
}

describe.skipIf(!available)('pushes across instances', () => {
  let sandbox: SandboxHandle;
  let temp: { dir: string; remove: () => void };
  const kits: CodePay[] = [];
  const servers: KitServer[] = [];
  const redisClients: Array<{ close(): Promise<unknown> }> = [];

  async function startInstance(dbFile: string, destination: string, adapterKey: string): Promise<{ kit: CodePay; server: KitServer }> {
    const kit = await createCodePay({
      ...kitOptions({ sandbox, dbFile, destination, grants: new GrantRecorder() }),
      gameId: 'redis-push',
    });
    const server = await startKitServer();

    const publisher = createClient({ url: REDIS_URL });
    const subscriber = publisher.duplicate();
    publisher.on('error', () => undefined);
    subscriber.on('error', () => undefined);
    await Promise.all([publisher.connect(), subscriber.connect()]);
    redisClients.push(publisher, subscriber);
    server.io.adapter(createAdapter(publisher, subscriber, { key: adapterKey }));

    server.mount(kit);
    kits.push(kit);
    servers.push(server);
    return { kit, server };
  }

  beforeAll(async () => {
    temp = makeTempDir();
    sandbox = await startTestSandbox(temp.dir);
  });

  afterAll(async () => {
    for (const server of servers) {
      await server.close();
    }
    for (const kit of kits) {
      await kit.close();
    }
    for (const client of redisClients) {
      await client.close().catch(() => undefined);
    }
    await sandbox.close();
    temp.remove();
  });

  it('reaches a player on the other instance', async () => {
    const dbFile = join(temp.dir, 'shared.db');
    const destination = randomAddress();
    const adapterKey = `code-pay-test-${randomUUID()}`;
    const first = await startInstance(dbFile, destination, adapterKey);
    const second = await startInstance(dbFile, destination, adapterKey);
    const socket = await connectPlayer(second.server.url, 'player:alice');
    const updates: Purchase[] = [];
    socket.on('purchase:updated', (purchase) => updates.push(purchase));

    const purchase = await first.kit.createPurchase('alice', { itemId: 'sword' });
    await waitFor('the pending push', () => (updates.some((update) => update.id === purchase.id) ? true : undefined));
    await payIntent(sandbox, purchase.intentId);
    await waitFor('the granted push', () => (updates.some((update) => update.state === 'granted') ? true : undefined));
    socket.close();

    expect(updates[0]).toMatchObject({ id: purchase.id, state: 'pending' });
    expect(updates.map((update) => update.id).every((id) => id === purchase.id)).toBe(true);
  });
});
