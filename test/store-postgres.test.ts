// Runs the purchase store contract against a local PostgreSQL through the
// kit's own driver (`openStore({ postgres: url })`). The test file gets a
// database of its own, and each contract database is a schema in it.
//
// The server comes from CODE_PAY_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/test). Without a reachable server the
// suite is skipped, except under CI=true, where it fails.

import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../server/errors.js';
import { openStore } from '../server/store/index.js';
import type { PurchaseStore } from '../server/store/types.js';
import { createTestDatabase, describePostgresServer, isPostgresReachable, type TestPostgresDatabase } from './postgres-helpers.js';
import { describeStoreContract, newPurchase } from './store-contract.js';

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
  describe('purchase store contract: PostgreSQL', () => {
    it.runIf(process.env.CI === 'true')('needs a reachable PostgreSQL under CI', () => {
      expect.fail(`No PostgreSQL at ${describePostgresServer()}; set CODE_PAY_TEST_POSTGRES or start the server.`);
    });
    it.skipIf(process.env.CI === 'true')(`is skipped: no PostgreSQL at ${describePostgresServer()}`, () => undefined);
  });
}
