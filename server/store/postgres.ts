// The PostgreSQL driver of the purchase store, on `pg`: a connection pool, and
// one pooled connection per transaction between BEGIN and COMMIT or ROLLBACK.
// `pg` takes `$1`, `$2`, … placeholders natively, so the store's SQL and a
// game's grant handler run unchanged.
//
// Any number of processes may share one database. Uniqueness and the state
// machine are enforced by constraints, conditional updates and `FOR UPDATE`
// row locks in the store's SQL, not by this process.

import { AsyncLocalStorage } from 'node:async_hooks';

import pg from 'pg';
import type { Logger } from 'pino';

import { CodePayError } from '../errors.js';
import type { StoreDriver, TransactionOptions } from './driver.js';
import type { StoreTransaction } from './types.js';

export interface PostgresDriverOptions {
  /** Maximum connections of this process's pool. Default 10. */
  maxConnections?: number;
  /** How long a transaction waits for a free pooled connection before failing (ms). Default 10,000. */
  connectionTimeoutMs?: number;
  /** Logs connection errors of idle pooled clients. */
  logger?: Logger;
}

const DEFAULT_MAX_CONNECTIONS = 10;
const DEFAULT_CONNECTION_TIMEOUT_MS = 10_000;

/**
 * SQLSTATE codes after which PostgreSQL rolled the whole transaction back and
 * a rerun may succeed: serialization_failure and deadlock_detected.
 */
const RETRYABLE_CODES = new Set(['40001', '40P01']);

/** Attempts of one transaction when PostgreSQL reports a deadlock or serialization failure. */
const MAX_ATTEMPTS = 3;

/** Statements that would end or split the driver's transaction from inside a callback. */
const TRANSACTION_CONTROL = /^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE|ABORT)\b/i;

/**
 * The transaction the current async context runs in. A store call from
 * inside a grant handler would take a second pooled connection and could wait
 * forever on a row lock the first one holds, so it is rejected.
 */
const activeTransaction = new AsyncLocalStorage<{ driver: PostgresDriver; running: boolean }>();

class PostgresTransaction implements StoreTransaction {
  readonly dialect = 'postgres' as const;
  private open = true;

  constructor(private readonly client: pg.PoolClient) {}

  async query<Row extends Record<string, unknown> = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    const result = await this.client.query(this.check(sql), [...params]);
    return result.rows as Row[];
  }

  async execute(sql: string, params: readonly unknown[] = []): Promise<{ rowCount: number }> {
    const result = await this.client.query(this.check(sql), [...params]);
    return { rowCount: result.rowCount ?? 0 };
  }

  close(): void {
    this.open = false;
  }

  private check(sql: string): string {
    if (!this.open) {
      throw new CodePayError(
        'internal',
        'This store transaction has already ended; run statements only while the grant handler or transaction callback runs.',
      );
    }
    if (TRANSACTION_CONTROL.test(sql)) {
      throw new CodePayError(
        'internal',
        `Transaction control statements are not allowed inside a store transaction (got "${sql.trim().slice(0, 40)}"); the store commits or rolls back for you.`,
      );
    }
    return sql;
  }
}

/** Returns the connection URL without its password, for messages and logs. */
export function redactConnectionString(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    if (url.password !== '') {
      url.password = '***';
    }
    return url.toString();
  } catch {
    return '<unparsable connection URL>';
  }
}

export class PostgresDriver implements StoreDriver {
  readonly dialect = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly running = new Set<Promise<unknown>>();
  private readonly onClientError: (error: Error) => void;
  private closed = false;

  constructor(connectionString: string, options: PostgresDriverOptions = {}) {
    this.pool = new pg.Pool({
      connectionString,
      max: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      connectionTimeoutMillis: options.connectionTimeoutMs ?? DEFAULT_CONNECTION_TIMEOUT_MS,
    });

    // An idle pooled client that loses its connection emits `error` on the
    // pool; without a listener that would end the process. The pool drops the
    // client and opens a new one on the next transaction.
    const target = redactConnectionString(connectionString);
    this.pool.on('error', (error) => {
      options.logger?.error({ err: error, database: target }, 'idle PostgreSQL connection failed; the pool replaces it');
    });

    // A checked-out client emits `error` on itself, not on the pool, when the
    // server ends its connection (for example on a restart). The query in
    // flight rejects too, so the transaction fails; the listener only keeps
    // the event from ending the process.
    this.onClientError = (error) => {
      options.logger?.error({ err: error, database: target }, 'PostgreSQL connection failed during a transaction; the transaction fails and the pool replaces the connection');
    };
  }

  transaction<T>(fn: (tx: StoreTransaction) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    if (this.closed) {
      return Promise.reject(new CodePayError('internal', 'The purchase store is closed; open a new one with openStore().'));
    }
    const outer = activeTransaction.getStore();
    if (outer !== undefined && outer.driver === this && outer.running) {
      return Promise.reject(
        new CodePayError(
          'internal',
          'A store method was called inside a grant handler or store transaction. Use the `tx` argument for database work there: ' +
            'a second transaction could wait forever on a row the first one has locked.',
        ),
      );
    }

    const run = this.runWithRetries(fn, options);
    this.running.add(run);
    const forget = (): void => {
      this.running.delete(run);
    };
    run.then(forget, forget);
    return run;
  }

  /** Waits for running transactions, then closes every pooled connection. */
  async close(): Promise<void> {
    if (this.closed) {
      return;
    }
    this.closed = true;
    await Promise.allSettled([...this.running]);
    await this.pool.end();
  }

  /**
   * Reruns the whole callback when PostgreSQL aborted the transaction for a
   * deadlock or a serialization failure. Nothing of the failed attempt was
   * committed, and the callback only writes through `tx`, so a rerun is safe.
   */
  private async runWithRetries<T>(fn: (tx: StoreTransaction) => Promise<T>, options: TransactionOptions): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.runTransaction(fn, options);
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (attempt >= MAX_ATTEMPTS || typeof code !== 'string' || !RETRYABLE_CODES.has(code)) {
          throw error;
        }
      }
    }
  }

  private async runTransaction<T>(fn: (tx: StoreTransaction) => Promise<T>, options: TransactionOptions): Promise<T> {
    const client = await this.pool.connect();
    client.on('error', this.onClientError);
    const tx = new PostgresTransaction(client);
    const context = { driver: this, running: true };
    let broken = false;

    try {
      await client.query(options.readOnly === true ? 'BEGIN READ ONLY' : 'BEGIN');
      let result: T;
      try {
        result = await activeTransaction.run(context, () => fn(tx));
      } finally {
        context.running = false;
        tx.close();
      }
      await client.query('COMMIT');
      return result;
    } catch (error) {
      broken = await rollback(client);
      throw error;
    } finally {
      // A client whose rollback failed may still be inside a transaction, so
      // it is destroyed instead of going back to the pool.
      client.off('error', this.onClientError);
      client.release(broken);
    }
  }
}

/** Rolls back; returns true when that failed and the connection must not be reused. */
async function rollback(client: pg.PoolClient): Promise<boolean> {
  try {
    await client.query('ROLLBACK');
    return false;
  } catch {
    return true;
  }
}
