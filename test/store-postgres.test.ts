// Runs the purchase store contract against a local PostgreSQL through the
// kit's own driver (`openStore({ postgres: url })`). The test file gets a
// database of its own, and each contract database is a schema in it.
//
// The server comes from CODE_PAY_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/test). Without a reachable server the
// suite is skipped, except under CI=true, where it fails.

import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../server/errors.js';
import { openStore } from '../server/store/index.js';
import type { PurchaseStore, StoreTransaction } from '../server/store/types.js';
import { createTestDatabase, describePostgresServer, isPostgresReachable, type TestPostgresDatabase } from './postgres-helpers.js';
import { describeStoreContract, expectCodePayError, newPurchase } from './store-contract.js';

const silent = pino({ level: 'silent' });
const reachable = await isPostgresReachable();
const database: TestPostgresDatabase | undefined = reachable ? await createTestDatabase() : undefined;

afterAll(async () => {
  await database?.drop();
});

if (database !== undefined) {
  describeStoreContract('PostgreSQL', {
    async createDatabase() {
      const schema = `contract_${randomUUID().replaceAll('-', '')}`;
      await database.query(`CREATE SCHEMA ${schema}`);
      const url = database.urlWithSchema(schema);
      return { open: () => openStore({ postgres: url, maxConnections: 10 }, silent) };
    },
  });

  describe('PostgreSQL store', () => {
    const opened: PurchaseStore[] = [];

    async function open(): Promise<PurchaseStore> {
      const schema = `driver_${randomUUID().replaceAll('-', '')}`;
      await database!.query(`CREATE SCHEMA ${schema}`);
      const store = await openStore({ postgres: database!.urlWithSchema(schema) }, silent);
      opened.push(store);
      return store;
    }

    async function insertPaid(store: PurchaseStore): Promise<string> {
      const { purchase } = await store.insertPurchase(newPurchase());
      await store.transition({ purchaseId: purchase.id, to: 'paid', source: 'webhook', at: Date.now() });
      return purchase.id;
    }

    afterEach(async () => {
      for (const store of opened.splice(0)) {
        await store.close();
      }
    });

    it('rejects a store call inside a grant handler', async () => {
      const store = await open();
      const purchaseId = await insertPaid(store);

      const rejected = store.grant(
        purchaseId,
        async () => {
          await store.getById(purchaseId);
        },
        Date.now(),
      );

      const error = await expectCodePayError(rejected, 'internal');
      expect(error.message).toContain('Use the `tx` argument');
      expect((await store.getById(purchaseId))?.state).toBe('paid');
    });

    it('allows store calls from work a handler started', async () => {
      const store = await open();
      const purchaseId = await insertPaid(store);
      let later: Promise<unknown> | undefined;

      await store.grant(
        purchaseId,
        () => {
          later = new Promise((resolve, reject) => {
            setTimeout(() => store.getById(purchaseId).then(resolve, reject), 20);
          });
        },
        Date.now(),
      );

      expect(await later).toMatchObject({ id: purchaseId, state: 'granted' });
    });

    it('rejects a transaction handle used after commit', async () => {
      const store = await open();
      let leaked: StoreTransaction | undefined;

      await store.transaction(async (tx) => {
        leaked = tx;
      });

      await expectCodePayError(leaked!.query('SELECT 1'), 'internal');
    });

    it('rejects transaction control statements', async () => {
      const store = await open();

      for (const statement of ['COMMIT', 'rollback', '  BEGIN', 'START TRANSACTION', 'SAVEPOINT inner']) {
        await expectCodePayError(
          store.transaction((tx) => tx.execute(statement)),
          'internal',
        );
      }
    });

    it('rejects calls after close', async () => {
      const store = await open();
      await store.close();

      await expectCodePayError(store.getById('purchase-1'), 'internal');
    });

    it('waits for a running grant before closing', async () => {
      const store = await open();
      const purchaseId = await insertPaid(store);

      const granting = store.grant(purchaseId, () => new Promise((resolve) => setTimeout(resolve, 50)), Date.now());
      await store.close();

      expect((await granting).status).toBe('granted');
    });

    it('runs other purchases during a slow grant', async () => {
      const store = await open();
      const slowId = await insertPaid(store);
      const otherId = await insertPaid(store);
      let release: () => void = () => undefined;
      const handlerWaits = new Promise<void>((resolve) => (release = resolve));

      const slow = store.grant(slowId, () => handlerWaits, Date.now());
      const other = await store.grant(otherId, () => undefined, Date.now());

      expect(other.status).toBe('granted');
      expect((await store.getById(slowId))?.state).toBe('paid');
      release();
      expect((await slow).status).toBe('granted');
    });

    it('reruns a transaction after a deadlock', async () => {
      const store = await open();
      await store.transaction((tx) => tx.execute('CREATE TABLE counters (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)'));
      await store.transaction((tx) => tx.execute('INSERT INTO counters (id, value) VALUES (1, 0), (2, 0)'));
      let attempts = 0;
      let bothLocked: () => void = () => undefined;
      const firstLocks = new Promise<void>((resolve) => (bothLocked = resolve));
      let lockedCount = 0;

      // Each transaction locks one row, waits until the other has locked
      // its row, then updates the other's row: PostgreSQL aborts one of them.
      const lockInOrder = (first: number, second: number) =>
        store.transaction(async (tx) => {
          attempts += 1;
          await tx.execute('UPDATE counters SET value = value + 1 WHERE id = $1', [first]);
          lockedCount += 1;
          if (lockedCount === 2) {
            bothLocked();
          }
          await firstLocks;
          await tx.execute('UPDATE counters SET value = value + 1 WHERE id = $1', [second]);
        });

      await Promise.all([lockInOrder(1, 2), lockInOrder(2, 1)]);

      const rows = await store.transaction((tx) => tx.query<{ id: number; value: number }>('SELECT id, value FROM counters ORDER BY id'));
      expect(rows).toEqual([
        { id: 1, value: 2 },
        { id: 2, value: 2 },
      ]);
      expect(attempts).toBe(3);
    });

    it('creates one purchase for racing instances', async () => {
      const schema = `race_${randomUUID().replaceAll('-', '')}`;
      await database.query(`CREATE SCHEMA ${schema}`);
      const stores: PurchaseStore[] = await Promise.all(
        Array.from({ length: 3 }, () => openStore({ postgres: database.urlWithSchema(schema) }, silent)),
      );
      try {
        const request = newPurchase();
        const results = await Promise.all(
          Array.from({ length: 60 }, (_, index) => stores[index % stores.length].insertPurchase({ ...request })),
        );

        expect(results.filter((result) => result.created)).toHaveLength(1);
        for (const result of results) {
          expect(result.purchase).toEqual(results[0].purchase);
        }
      } finally {
        await Promise.all(stores.map((store) => store.close()));
      }
    });

    it('rejects a URL that is not postgres://', async () => {
      await expect(openStore({ postgres: 'mysql://127.0.0.1/test' }, silent)).rejects.toBeInstanceOf(ConfigError);
    });

    it('names the database in a failed connection without its password', async () => {
      const url = new URL(database.url);
      url.password = 'not-the-password';
      url.pathname = '/code_pay_missing_database';
      const error = await openStore({ postgres: url.toString(), connectionTimeoutMs: 2_000 }, silent).then(
        () => undefined,
        (reason: unknown) => reason as Error,
      );

      expect(error).toBeInstanceOf(ConfigError);
      expect(error?.message).toContain('code_pay_missing_database');
      expect(error?.message).not.toContain('not-the-password');
    });
  });
} else {
  console.warn(`Skipping the PostgreSQL store tests: no PostgreSQL at ${describePostgresServer()} (set CODE_PAY_TEST_POSTGRES or start the server).`);
  describe('purchase store contract: PostgreSQL', () => {
    it.runIf(process.env.CI === 'true')('needs a reachable PostgreSQL under CI', () => {
      expect.fail(`No PostgreSQL at ${describePostgresServer()}; set CODE_PAY_TEST_POSTGRES or start the server.`);
    });
    it.skipIf(process.env.CI === 'true')(`is skipped: no PostgreSQL at ${describePostgresServer()}`, () => undefined);
  });
}
