// Opens the purchase store named by the kit's `store` setting (SQLite or
// PostgreSQL) and brings its schema up to date.

import type { Logger } from 'pino';
import pino from 'pino';
import { ConfigError } from '../errors.js';
import { PostgresDriver, redactConnectionString } from './postgres.js';
import type { PostgresDriverOptions } from './postgres.js';
import { SqlPurchaseStore } from './sql-store.js';
import { SqliteDriver } from './sqlite.js';
import type { SqliteDriverOptions } from './sqlite.js';
import type { PurchaseStore } from './types.js';

export type StoreConfig =
  | ({ sqlite: string } & SqliteDriverOptions)
  | ({ postgres: string } & Pick<PostgresDriverOptions, 'maxConnections' | 'connectionTimeoutMs'>);

export type { PurchaseStore } from './types.js';
export { SqlPurchaseStore } from './sql-store.js';
export { SqliteDriver } from './sqlite.js';
export { PostgresDriver } from './postgres.js';
export type { StoreDriver, TransactionOptions } from './driver.js';

/** Suggests a fix for a failure to open the SQLite file, from SQLite's error code. */
function openFailureHint(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (code === 'SQLITE_BUSY') {
    return 'Timed out waiting for the SQLite write lock, which another process has. Raise busyTimeoutMs or find the process that keeps a transaction open.';
  }
  return 'Check that the directory exists and is writable.';
}

/**
 * Opens and migrates the purchase store. `{ sqlite: path }` opens (or creates)
 * one SQLite database file; `{ postgres: url }` connects a pool to an
 * existing PostgreSQL database, which any number of kit instances may share.
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

  const driver = hasPostgres ? openPostgres(config, storeLogger) : openSqlite(config as { sqlite: string } & SqliteDriverOptions);
  const store = new SqlPurchaseStore(driver, storeLogger);
  try {
    await store.migrate();
  } catch (error) {
    await store.close();
    if (driver.dialect === 'postgres' && !(error instanceof ConfigError)) {
      const target = redactConnectionString((config as { postgres: string }).postgres);
      throw new ConfigError(`Cannot open the PostgreSQL purchase store at ${target}: ${(error as Error).message}. ${postgresHint(error)}`);
    }
    throw error;
  }
  return store;
}

function openSqlite(config: { sqlite: string } & SqliteDriverOptions): SqliteDriver {
  if (typeof config.sqlite !== 'string' || config.sqlite.trim() === '') {
    throw new ConfigError('Invalid store setting `sqlite`: expected the path of the database file, for example "./code-pay.db".');
  }
  const busyTimeoutMs = config.busyTimeoutMs;
  if (busyTimeoutMs !== undefined && (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0)) {
    throw new ConfigError(`Invalid store setting \`busyTimeoutMs\`: expected a whole number of milliseconds, got ${String(busyTimeoutMs)}.`);
  }

  try {
    return new SqliteDriver(config.sqlite, { busyTimeoutMs });
  } catch (error) {
    throw new ConfigError(`Cannot open the SQLite purchase store at ${config.sqlite}: ${(error as Error).message}. ${openFailureHint(error)}`);
  }
}

function openPostgres(config: { postgres: string } & PostgresDriverOptions, logger: Logger): PostgresDriver {
  const url = config.postgres;
  if (typeof url !== 'string' || !/^postgres(ql)?:\/\//.test(url.trim())) {
    throw new ConfigError('Invalid store setting `postgres`: expected a connection URL such as "postgres://user@host:5432/database".');
  }
  for (const option of ['maxConnections', 'connectionTimeoutMs'] as const) {
    const value = config[option];
    if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
      throw new ConfigError(`Invalid store setting \`${option}\`: expected a positive whole number, got ${String(value)}.`);
    }
  }
  return new PostgresDriver(url.trim(), {
    maxConnections: config.maxConnections,
    connectionTimeoutMs: config.connectionTimeoutMs,
    logger,
  });
}


/** Suggests a fix for a failure to reach PostgreSQL, from the error code of `pg` or Node. */
function postgresHint(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND') {
    return 'Check that PostgreSQL runs and that the host and port in the URL are right.';
  }
  if (code === '3D000') {
    return 'The database does not exist; create it first (CREATE DATABASE), the kit creates only its tables.';
  }
  if (code === '28P01' || code === '28000') {
    return 'Check the user name and password in the URL.';
  }
  return 'Check the URL, the server and that the user may create tables.';
}
