// Opens the purchase store named by the kit's `store` setting and brings its
// schema up to date.

import type { Logger } from 'pino';
import pino from 'pino';
import { ConfigError } from '../errors.js';
import { SqlPurchaseStore } from './sql-store.js';
import { SqliteDriver } from './sqlite.js';
import type { SqliteDriverOptions } from './sqlite.js';
import type { PurchaseStore } from './types.js';

export type StoreConfig = ({ sqlite: string } & SqliteDriverOptions) | { postgres: string };

export type { PurchaseStore } from './types.js';
export { SqlPurchaseStore } from './sql-store.js';
export { SqliteDriver } from './sqlite.js';
export type { StoreDriver, TransactionOptions } from './driver.js';

/** Suggests a fix for a failure to open the SQLite file, from SQLite's error code. */
function openFailureHint(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (code === 'SQLITE_BUSY') {
    return 'Another process holds the write lock; raise busyTimeoutMs or find the process that keeps a transaction open.';
  }
  return 'Check that the directory exists and is writable.';
}

/**
 * Opens and migrates the purchase store. `{ sqlite: path }` opens (or creates)
 * one SQLite database file; `{ postgres: url }` is reserved for the PostgreSQL
 * driver and throws `ConfigError` until it exists.
 */
export async function openStore(config: StoreConfig, logger?: Logger): Promise<PurchaseStore> {
  const storeLogger = logger ?? pino({ name: 'phaser-code-pay.store' });

  if (typeof config !== 'object' || config === null) {
    throw new ConfigError('Invalid store setting: expected { sqlite: "./code-pay.db" } or { postgres: "postgres://…" }.');
  }
  const hasSqlite = 'sqlite' in config;
  const hasPostgres = 'postgres' in config;
  if (hasSqlite === hasPostgres) {
    throw new ConfigError('Invalid store setting: set exactly one of `sqlite` (a database file path) or `postgres` (a connection URL).');
  }
  if (hasPostgres) {
    throw new ConfigError('PostgreSQL support is not available yet; use { sqlite: "./code-pay.db" } for the store setting.');
  }
  if (typeof config.sqlite !== 'string' || config.sqlite.trim() === '') {
    throw new ConfigError('Invalid store setting `sqlite`: expected the path of the database file, for example "./code-pay.db".');
  }
  const busyTimeoutMs = config.busyTimeoutMs;
  if (busyTimeoutMs !== undefined && (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0)) {
    throw new ConfigError(`Invalid store setting \`busyTimeoutMs\`: expected a whole number of milliseconds, got ${String(busyTimeoutMs)}.`);
  }

  let driver: SqliteDriver;
  try {
    driver = new SqliteDriver(config.sqlite, { busyTimeoutMs });
  } catch (error) {
    throw new ConfigError(`Cannot open the SQLite purchase store at ${config.sqlite}: ${(error as Error).message}. ${openFailureHint(error)}`);
  }

  const store = new SqlPurchaseStore(driver, storeLogger);
  try {
    await store.migrate();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}
