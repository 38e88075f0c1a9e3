// Runs the purchase store contract against a local PostgreSQL to check that
// the store's SQL runs unchanged there. Each test database is a schema of its
// own. The driver below is a minimal test driver, not the kit's PostgreSQL
// support.
//
// The server comes from CODE_PAY_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/postgres). Without a reachable server
// the suite is skipped, except under CI=true, where it fails.

import { randomUUID } from 'node:crypto';
import pg from 'pg';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import type { StoreDriver, TransactionOptions } from '../server/store/driver.js';
import { SqlPurchaseStore } from '../server/store/sql-store.js';
import type { StoreTransaction } from '../server/store/types.js';
import { describeStoreContract } from './store-contract.js';

const connectionString = process.env.CODE_PAY_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const silent = pino({ level: 'silent' });

/** Runs each transaction on one pooled connection between BEGIN and COMMIT or ROLLBACK. */
class TestPostgresDriver implements StoreDriver {
  readonly dialect = 'postgres' as const;

  constructor(private readonly pool: pg.Pool) {}

  async transaction<T>(fn: (tx: StoreTransaction) => Promise<T>, _options?: TransactionOptions): Promise<T> {
    const client = await this.pool.connect();
    const tx: StoreTransaction = {
      dialect: 'postgres',
      query: async <Row extends Record<string, unknown>>(sql: string, params: readonly unknown[] = []) =>
        (await client.query(sql, [...params])).rows as Row[],
      execute: async (sql: string, params: readonly unknown[] = []) => ({ rowCount: (await client.query(sql, [...params])).rowCount ?? 0 }),
    };

    try {
      await client.query('BEGIN');
      const result = await fn(tx);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK');
      throw error;
    } finally {
      client.release();
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

async function isReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const reachable = await isReachable();
const schemas: string[] = [];
const admin = reachable ? new pg.Pool({ connectionString, max: 2 }) : undefined;

afterAll(async () => {
  if (admin === undefined) {
    return;
  }
  for (const schema of schemas) {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  }
  await admin.end();
});

if (reachable) {
  describeStoreContract('PostgreSQL', {
    async createDatabase() {
      const schema = `code_pay_test_${randomUUID().replaceAll('-', '')}`;
      await admin!.query(`CREATE SCHEMA ${schema}`);
      schemas.push(schema);

      return {
        async open() {
          const pool = new pg.Pool({ connectionString, options: `-c search_path=${schema}`, max: 10 });
          const store = new SqlPurchaseStore(new TestPostgresDriver(pool), silent);
          await store.migrate();
          return store;
        },
      };
    },
  });
} else {
  describe('purchase store contract: PostgreSQL', () => {
    it.runIf(process.env.CI === 'true')('needs a reachable PostgreSQL under CI', () => {
      expect.fail(`No PostgreSQL at ${connectionString.replace(/\/\/[^@]*@/, '//')}; set CODE_PAY_TEST_POSTGRES or start the server.`);
    });
    it.skipIf(process.env.CI === 'true')('is skipped without a reachable PostgreSQL', () => undefined);
  });
}
