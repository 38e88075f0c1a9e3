// The per-player rate limit shared through Redis: two kits on one database,
// each with the `redis` option, and one player connected to both. Needs
// Redis on loopback (CODE_PAY_TEST_REDIS); skipped without it, except under
// CI=true, where it fails.

import { join } from 'node:path';

import { createClient } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { CatalogAck } from '../protocol/index.js';
import { createCodePay, type CodePay } from '../server/index.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import {
  GrantRecorder,
  connectPlayer,
  kitOptions,
  makeTempDir,
  randomAddress,
  startKitServer,
  startTestSandbox,
  type KitServer,
  type TestClient,
} from './kit-helpers.js';
import { REDIS_URL, isRedisReachable } from './scale-helpers.js';

const reachable = await isRedisReachable();

describe.skipIf(!reachable)('rate limit across instances', () => {
  let sandbox: SandboxHandle;
  let temp: { dir: string; remove: () => void };
  const kits: CodePay[] = [];
  const servers: KitServer[] = [];
  const clients: TestClient[] = [];
  /** A game id per run, so the buckets of an earlier run in the same Redis do not count. */
  const gameId = `rate-limit-${crypto.randomUUID().slice(0, 8)}`;

  async function startInstance(burst: number, redis: boolean): Promise<KitServer> {
    const kit = await createCodePay({
      ...kitOptions({ sandbox, dbFile: join(temp.dir, 'kit.db'), destination: randomAddress(), grants: new GrantRecorder() }),
      gameId,
      rateLimit: { burst, perSecond: 0.01 },
      ...(redis ? { redis: { url: REDIS_URL } } : {}),
    });
    const server = await startKitServer(kit);
    kits.push(kit);
    servers.push(server);
    return server;
  }

  async function connect(server: KitServer, playerId: string): Promise<TestClient> {
    const client = await connectPlayer(server.url, `player:${playerId}`);
    clients.push(client);
    return client;
  }

  async function requestCatalog(client: TestClient): Promise<CatalogAck> {
    return client.timeout(5_000).emitWithAck('catalog');
  }

  beforeAll(async () => {
    temp = makeTempDir();
    sandbox = await startTestSandbox(temp.dir);
  });

  afterAll(async () => {
    for (const client of clients) {
      client.close();
    }
    await Promise.all(servers.map((server) => server.close()));
    await Promise.all(kits.map((kit) => kit.close()));
    await sandbox?.close();
    temp?.remove();
  });

  it('limits a player on two instances to one burst', async () => {
    const [first, second] = [await startInstance(6, true), await startInstance(6, true)];
    const onFirst = await connect(first, 'player-shared');
    const onSecond = await connect(second, 'player-shared');

    const acks = await Promise.all(Array.from({ length: 12 }, (_, index) => requestCatalog(index % 2 === 0 ? onFirst : onSecond)));

    expect(acks.filter((ack) => ack.ok)).toHaveLength(6);
    const limited = acks.filter((ack) => !ack.ok);
    expect(limited).toHaveLength(6);
    for (const ack of limited) {
      expect(ack.ok ? undefined : ack.error.code).toBe('rate_limited');
    }
  });

  it('keeps other players apart', async () => {
    const server = servers[0]!;
    const other = await connect(server, 'player-other');

    const ack = await requestCatalog(other);

    expect(ack.ok).toBe(true);
  });

  it('stores the bucket under the game id', async () => {
    const client = createClient({ url: REDIS_URL });
    await client.connect();
    try {
      const keys = await client.keys(`code-pay:rate:${gameId}:*`);
      expect(keys.sort()).toEqual([`code-pay:rate:${gameId}:player-other`, `code-pay:rate:${gameId}:player-shared`]);
      expect(await client.pTTL(`code-pay:rate:${gameId}:player-shared`)).toBeGreaterThan(0);
    } finally {
      await client.close();
    }
  });

  it('rejects a kit whose Redis is unreachable', async () => {
    const options = kitOptions({ sandbox, dbFile: join(temp.dir, 'unreachable.db'), destination: randomAddress(), grants: new GrantRecorder() });

    await expect(createCodePay({ ...options, redis: { url: 'redis://127.0.0.1:1' } })).rejects.toThrow(/Cannot connect to Redis at redis:\/\/127\.0\.0\.1:1/);
  });
});

if (!reachable) {
  console.warn(`Skipping the cross-instance rate limit tests: no Redis at ${REDIS_URL}.`);
}

describe.skipIf(reachable)('rate limit across instances without Redis', () => {
  it.runIf(process.env.CI === 'true')('needs Redis under CI', () => {
    expect.fail(`No Redis at ${REDIS_URL}; start redis-server or set CODE_PAY_TEST_REDIS.`);
  });
  it.skipIf(process.env.CI === 'true')(`is skipped: no Redis at ${REDIS_URL}`, () => undefined);
});
