// A throwaway PostgreSQL database per test file, for tests of the
// PostgreSQL store and the scale-out mode. The server comes from
// CODE_PAY_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test);
// each call creates `code_pay_test_<random>` there and drops it at the end.

import { randomUUID } from 'node:crypto';

import pg from 'pg';

export const POSTGRES_SERVER_URL = process.env.CODE_PAY_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Returns the URL without its user and password, for messages. */
export function describePostgresServer(url: string = POSTGRES_SERVER_URL): string {
  return url.replace(/\/\/[^@]*@/, '//');
}

export async function isPostgresReachable(url: string = POSTGRES_SERVER_URL): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
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

export interface TestPostgresDatabase {
  /** Connection URL of the new, empty database. */
  url: string;
  /** Returns a URL of the same database whose connections use `schema` first. */
  urlWithSchema(schema: string): string;
  /** Runs one statement in the new database as the server's user. */
  query(sql: string): Promise<void>;
  /** Drops the database, ending connections still open to it. */
  drop(): Promise<void>;
}

/** Creates an empty database with a random name on the test server. */
export async function createTestDatabase(serverUrl: string = POSTGRES_SERVER_URL): Promise<TestPostgresDatabase> {
  const name = `code_pay_test_${randomUUID().replaceAll('-', '')}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }

  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();

  return {
    url: databaseUrl,
    urlWithSchema(schema) {
      const withSchema = new URL(databaseUrl);
      withSchema.searchParams.set('options', `-c search_path=${schema}`);
      return withSchema.toString();
    },
    async query(sql) {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      try {
        await client.query(sql);
      } finally {
        await client.end();
      }
    },
    async drop() {
      const dropper = new pg.Client({ connectionString: serverUrl });
      await dropper.connect();
      try {
        await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await dropper.end();
      }
    },
  };
}
