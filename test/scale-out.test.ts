// The sample server in scale-out mode: three processes on one PostgreSQL
// database, one Redis and one sandbox sequencer that runs in this test
// process. Needs PostgreSQL (CODE_PAY_TEST_POSTGRES) and Redis
// (CODE_PAY_TEST_REDIS) on loopback; the suite is skipped without them,
// except under CI=true, where it fails.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { PurchaseAck } from '../protocol/index.js';
import { startSandbox, type SandboxHandle } from '../server/sandbox/index.js';
import { EXTRA_LIVES, GOLDEN_SHIP } from '../sample-game/shared/items.js';
import { createTestDatabase, describePostgresServer, isPostgresReachable, type TestPostgresDatabase } from './postgres-helpers.js';
import {
  REDIS_URL,
  connect,
  createGuest,
  isRedisReachable,
  startInstance,
  stopInstance,
  waitForPush,
  waitUntil,
  type GameInstance,
  type GameSocket,
  type ServerProcess,
} from './scale-helpers.js';

/** Status checks of an open purchase run once per second on whichever instance claims them. */
const CHECK_INTERVAL_MS = 1_000;
const LEASE_MS = 3_000;

const postgresReachable = await isPostgresReachable();
const redisReachable = await isRedisReachable();
const ready = postgresReachable && redisReachable;

interface IntentRecord {
  intentId: string;
  webhook: { url: string; state: string } | null;
}

describe.skipIf(!ready)('scale-out mode', () => {
  let directory: string;
  let database: TestPostgresDatabase;
  let db: pg.Pool;
  let sandbox: SandboxHandle;
  let sharedEnv: Record<string, string>;
  const instances = new Map<string, GameInstance>();
  const sockets: GameSocket[] = [];

  async function start(name: string, env: Record<string, string> = {}): Promise<GameInstance> {
    const instance = await startInstance(name, { ...sharedEnv, ...env });
    instances.set(name, instance);
    return instance;
  }

  function instance(name: string): GameInstance {
    const found = instances.get(name);
    if (found === undefined) {
      throw new Error(`Instance ${name} is not running.`);
    }
    return found;
  }

  async function connectPlayer(target: GameInstance, token: string): Promise<GameSocket> {
    const socket = await connect(target, token);
    sockets.push(socket);
    return socket;
  }

  async function control(method: 'GET' | 'POST' | 'DELETE', route: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`${sandbox.url}/control${route}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status !== 200) {
      throw new Error(`${method} /control${route} returned ${response.status}: ${await response.text()}`);
    }
    return response.json();
  }

  async function getStatusCalls(): Promise<number> {
    const stats = (await control('GET', '/stats')) as { rpc: Record<string, number> };
    return stats.rpc['MicroPayment.GetStatus'] ?? 0;
  }

  async function chargesOf(intentId: string): Promise<number> {
    const ledger = (await control('GET', '/ledger')) as { entries: Array<{ intentId: string }> };
    return ledger.entries.filter((entry) => entry.intentId === intentId).length;
  }

  async function countRows(sql: string, params: unknown[]): Promise<number> {
    const result = await db.query<{ count: string }>(sql, params);
    return Number(result.rows[0]!.count);
  }

  async function grantsOf(purchaseId: string): Promise<number> {
    return countRows('SELECT COUNT(*) AS count FROM sample_grants WHERE purchase_id = $1', [purchaseId]);
  }

  async function grantTransitionsOf(purchaseId: string): Promise<number> {
    return countRows("SELECT COUNT(*) AS count FROM code_pay_transitions WHERE purchase_id = $1 AND to_state = 'granted'", [purchaseId]);
  }

  async function stateOf(purchaseId: string): Promise<string | undefined> {
    const result = await db.query<{ state: string }>('SELECT state FROM code_pay_purchases WHERE id = $1', [purchaseId]);
    return result.rows[0]?.state;
  }

  async function buy(socket: GameSocket, itemId: string, attemptId?: string): Promise<PurchaseAck> {
    const request = attemptId === undefined ? { itemId } : { itemId, attemptId };
    return socket.timeout(20_000).emitWithAck('purchase', request);
  }

  /** Buys one pack of extra lives for a new guest through `target`; returns the purchase id and intent id. */
  async function buyLives(target: GameInstance): Promise<{ purchaseId: string; intentId: string }> {
    const guest = await createGuest(target);
    const socket = await connectPlayer(target, guest.token);
    const ack = await buy(socket, EXTRA_LIVES, crypto.randomUUID());
    if (!ack.ok) {
      throw new Error(`purchase on ${target.name} failed: ${ack.error.code} ${ack.error.message}`);
    }
    return { purchaseId: ack.purchase.id, intentId: ack.purchase.intentId };
  }

  beforeAll(async () => {
    directory = mkdtempSync(path.join(tmpdir(), 'scale-out-'));
    database = await createTestDatabase();
    db = new pg.Pool({ connectionString: database.url, max: 2 });
    // An idle connection that PostgreSQL closes (a restart by another suite) must not end the test process.
    db.on('error', () => undefined);
    sandbox = await startSandbox({ port: 0, dataFile: path.join(directory, 'sandbox.db'), timeScale: 0.01, logger: pino({ level: 'error' }) });

    sharedEnv = {
      CODE_SEQUENCER_URL: sandbox.endpoint,
      CODE_SEQUENCER_PUBLIC_KEY: sandbox.publicKey,
      CODE_PAY_DATABASE_URL: database.url,
      CODE_PAY_REDIS_URL: REDIS_URL,
      CODE_PAY_KEY_SECRET: '5a'.repeat(32),
      SAMPLE_GAME_TOKEN_SECRET: 'scale-out-test-token-secret-0123456789',
      CODE_PAY_POLL_INTERVAL_MS: '100',
      CODE_PAY_FIRST_CHECK_MS: String(CHECK_INTERVAL_MS),
      CODE_PAY_MAX_CHECK_INTERVAL_MS: String(CHECK_INTERVAL_MS),
      CODE_PAY_LEASE_MS: String(LEASE_MS),
      CODE_SEQUENCER_TIMEOUT_MS: '2000',
      CODE_PAY_RATE_LIMIT_BURST: '1000',
      CODE_PAY_RATE_LIMIT_PER_SECOND: '1000',
    };

    // A first, so that instance C can send its webhooks to A.
    const a = await start('A');
    await Promise.all([start('B'), start('C', { CODE_PAY_WEBHOOK_URL: `${a.url}/code-pay/webhook` })]);
  }, 120_000);

  afterAll(async () => {
    for (const socket of sockets) {
      socket.disconnect();
    }
    await Promise.all([...instances.values()].map((running) => stopInstance(running, 'SIGKILL')));
    await sandbox?.close();
    await db?.end();
    await database?.drop();
    if (directory !== undefined) {
      rmSync(directory, { recursive: true, force: true });
    }
  }, 60_000);

  it('pushes a grant to the player on another instance', async () => {
    const guest = await createGuest(instance('A'));
    const onC = await connectPlayer(instance('C'), guest.token);
    const onB = await connectPlayer(instance('B'), guest.token);

    const ack = await buy(onC, GOLDEN_SHIP);
    if (!ack.ok) {
      throw new Error(`purchase failed: ${ack.error.code} ${ack.error.message}`);
    }
    const grantedOnC = waitForPush(onC, ack.purchase.id, 'granted');
    const grantedOnB = waitForPush(onB, ack.purchase.id, 'granted');

    const intent = (await control('GET', `/intents/${ack.purchase.intentId}`)) as IntentRecord;
    expect(intent.webhook?.url).toBe(`${instance('A').url}/code-pay/webhook`);

    await control('POST', `/intents/${ack.purchase.intentId}/pay`);

    // Whichever instance grants (A from the webhook, or B or C from a status
    // check), at least one of the two sockets is on another instance.
    expect((await grantedOnC).state).toBe('granted');
    expect((await grantedOnB).state).toBe('granted');
    const delivered = await waitUntil('the webhook delivery to A', async () => {
      const record = (await control('GET', `/intents/${ack.purchase.intentId}`)) as IntentRecord;
      return record.webhook?.state === 'delivered' ? record : undefined;
    });
    expect(delivered.webhook?.url).toBe(`${instance('A').url}/code-pay/webhook`);
    expect(await grantsOf(ack.purchase.id)).toBe(1);
  });

  it('creates one purchase for 300 requests on three instances', async () => {
    const guest = await createGuest(instance('A'));
    const clients = await Promise.all(['A', 'B', 'C'].map((name) => connectPlayer(instance(name), guest.token)));
    const intentsBefore = ((await control('GET', '/intents?limit=1')) as { total: number }).total;
    await control('DELETE', '/stats');

    const acks = await Promise.all(Array.from({ length: 300 }, (_, index) => buy(clients[index % clients.length]!, GOLDEN_SHIP)));

    const failures = acks.filter((ack) => !ack.ok);
    expect(failures).toEqual([]);
    const purchases = acks.flatMap((ack) => (ack.ok ? [ack.purchase] : []));
    expect(new Set(purchases.map((purchase) => purchase.id)).size).toBe(1);
    expect(new Set(purchases.map((purchase) => purchase.intentId)).size).toBe(1);
    expect(new Set(purchases.map((purchase) => purchase.clientSecret)).size).toBe(1);
    expect(((await control('GET', '/intents?limit=1')) as { total: number }).total).toBe(intentsBefore + 1);
    // Requests on one instance share one SendMessage; each instance sends at most one before the store has the purchase.
    const stats = (await control('GET', '/stats')) as { rpc: Record<string, number> };
    expect(stats.rpc['Messaging.SendMessage']).toBeGreaterThanOrEqual(1);
    expect(stats.rpc['Messaging.SendMessage']).toBeLessThanOrEqual(3);
    const purchase = purchases[0]!;
    expect(await countRows('SELECT COUNT(*) AS count FROM code_pay_purchases WHERE player_id = $1', [guest.playerId])).toBe(1);

    await control('POST', `/intents/${purchase.intentId}/pay`);
    await waitUntil('the grant', async () => ((await stateOf(purchase.id)) === 'granted' ? true : undefined));

    expect(await chargesOf(purchase.intentId)).toBe(1);
    expect(await grantsOf(purchase.id)).toBe(1);
    expect(await grantTransitionsOf(purchase.id)).toBe(1);
  }, 60_000);

  it('polls each open purchase once per interval', async () => {
    const open = await Promise.all([buyLives(instance('A')), buyLives(instance('B')), buyLives(instance('C')), buyLives(instance('A'))]);
    const openCount = await countRows("SELECT COUNT(*) AS count FROM code_pay_purchases WHERE state IN ('pending', 'cancelled', 'expired')", []);
    expect(openCount).toBe(open.length);

    await control('DELETE', '/stats');
    const startedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    const calls = await getStatusCalls();
    const elapsedMs = Date.now() - startedAt;
    if (process.env.CODE_PAY_TEST_VERBOSE === '1') {
      console.log(`GetStatus calls: ${calls} for ${openCount} open purchases in ${elapsedMs} ms`);
    }

    // Checks of one purchase are at least CHECK_INTERVAL_MS apart, so the
    // window contains at most floor(elapsed / interval) + 1 of them. Three
    // instances each polling every purchase would make about three times as many.
    const maxCalls = openCount * (Math.floor(elapsedMs / CHECK_INTERVAL_MS) + 1);
    expect(calls).toBeGreaterThanOrEqual(openCount);
    expect(calls).toBeLessThanOrEqual(maxCalls);

    for (const { intentId } of open) {
      await control('POST', `/intents/${intentId}/pay`);
    }
    for (const { purchaseId } of open) {
      await waitUntil(`the grant of ${purchaseId}`, async () => ((await stateOf(purchaseId)) === 'granted' ? true : undefined));
      expect(await grantsOf(purchaseId)).toBe(1);
    }
  }, 60_000);

  it('finishes the purchases of a killed instance', async () => {
    // Only A runs while the purchases are made and paid, with every status
    // check failing and every webhook dropped, so they all stay open.
    await Promise.all([stopInstance(instance('B')), stopInstance(instance('C'))]);
    instances.delete('B');
    instances.delete('C');
    await control('POST', '/faults', { clear: true, getStatus: { fail: 'always' }, webhook: { drop: 'always' } });

    const open = [];
    for (let index = 0; index < 4; index += 1) {
      open.push(await buyLives(instance('A')));
    }
    for (const { intentId } of open) {
      await control('POST', `/intents/${intentId}/pay`);
    }
    const openIds = open.map((purchase) => purchase.purchaseId);
    expect(await countRows("SELECT COUNT(*) AS count FROM code_pay_purchases WHERE id = ANY($1) AND state = 'pending'", [openIds])).toBe(4);

    // A restarted A reconciles at start-up. Its status checks hang past the
    // sequencer timeout, so it holds the leases until it is killed.
    await stopInstance(instance('A'));
    await control('POST', '/faults', { clear: true, getStatus: { delayMs: 60_000 }, webhook: { drop: 'always' } });
    let a2: ServerProcess | undefined;
    const restarted = startInstance('A2', sharedEnv, (child) => (a2 = child)).catch(() => undefined);
    const holder = await waitUntil(
      'instance A2 to claim every open purchase',
      async () => {
        const leases = await db.query<{ lease_owner: string; count: string }>(
          'SELECT lease_owner, COUNT(*) AS count FROM code_pay_purchases WHERE id = ANY($1) AND lease_expires_at > $2 GROUP BY lease_owner',
          [openIds, Date.now()],
        );
        const only = leases.rows.length === 1 ? leases.rows[0]! : undefined;
        return only !== undefined && Number(only.count) === openIds.length ? only.lease_owner : undefined;
      },
      30_000,
      10,
    );

    // Kill A2 at once, before its status checks time out and give the leases back.
    a2!.kill('SIGKILL');
    const exited = await restarted;
    if (exited !== undefined) {
      instances.set('A2', exited);
    }
    // The lease owner is `<host>:<pid>:<random>`.
    expect(holder.split(':').at(-2)).toBe(String(a2!.pid));
    await control('POST', '/faults', { clear: true });

    await Promise.all([start('B'), start('C')]);

    for (const purchaseId of openIds) {
      await waitUntil(`the grant of ${purchaseId}`, async () => ((await stateOf(purchaseId)) === 'granted' ? true : undefined), 30_000);
    }
    for (const { purchaseId, intentId } of open) {
      expect(await grantsOf(purchaseId)).toBe(1);
      expect(await grantTransitionsOf(purchaseId)).toBe(1);
      expect(await chargesOf(intentId)).toBe(1);
    }
  }, 120_000);
});

describe.skipIf(ready)('scale-out mode without its services', () => {
  const missing = [
    postgresReachable ? undefined : `PostgreSQL at ${describePostgresServer()}`,
    redisReachable ? undefined : `Redis at ${REDIS_URL}`,
  ].filter((entry) => entry !== undefined);
  if (missing.length > 0) {
    console.warn(`Skipping the scale-out tests: not reachable: ${missing.join(', ')}.`);
  }

  it.runIf(process.env.CI === 'true')('needs PostgreSQL and Redis under CI', () => {
    expect.fail(`Not reachable: ${missing.join(', ')}. Start them or set CODE_PAY_TEST_POSTGRES and CODE_PAY_TEST_REDIS.`);
  });
  it.skipIf(process.env.CI === 'true')(`is skipped: not reachable: ${missing.join(', ')}`, () => undefined);
});
