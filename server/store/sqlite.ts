// The SQLite driver of the purchase store, on `better-sqlite3`: one database
// file, WAL mode, a busy timeout and foreign keys on.
//
// `better-sqlite3` runs statements synchronously, but a grant handler is async
// and must commit together with the `granted` mark. So every transaction of the
// process on one database file goes through one async queue. The driver opens
// `BEGIN IMMEDIATE`, awaits the callback, then commits, or rolls back when it
// throws. Nothing else touches that file from this process in between.
// Another process on the same file waits on SQLite's write lock for up to the
// busy timeout. The cost: a slow grant handler delays every other store call.

import { AsyncLocalStorage } from 'node:async_hooks';
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import Database from 'better-sqlite3';
import { CodePayError } from '../errors.js';
import type { StoreDriver, TransactionOptions } from './driver.js';
import type { StoreTransaction } from './types.js';

export interface SqliteDriverOptions {
  /** How long a statement waits for another process's write lock before failing, in ms. Default 5000. */
  busyTimeoutMs?: number;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

/** Pause between attempts to switch a new database file to WAL mode (ms). */
const WAL_RETRY_PAUSE_MS = 20;

/** Runs async tasks one after another, in the order they were added. */
class TaskQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task);
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Resolves once every task added so far has settled. */
  drain(): Promise<void> {
    return this.tail.then(() => undefined);
  }
}

/**
 * One queue per database file and process, shared by every connection to that
 * file. Two connections of one process must not interleave transactions:
 * while one waits on an async grant handler with the write lock held, the
 * other's `BEGIN IMMEDIATE` would block the event loop in the busy handler
 * and the first could never finish.
 */
const queuesByFile = new Map<string, { queue: TaskQueue; connections: number }>();

/**
 * The transaction the current async context runs in, if any. Timers and
 * promises started inside a callback inherit this context after the
 * transaction has ended, so `running` records whether it is still open.
 */
const activeTransaction = new AsyncLocalStorage<{ queue: TaskQueue; running: boolean }>();

/** Maximum number of prepared statements kept per connection; the oldest is dropped first. */
const STATEMENT_CACHE_SIZE = 200;

/** Statements that would end or split the driver's transaction from inside a callback. */
const TRANSACTION_CONTROL = /^\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b/i;

/**
 * Converts parameters to values SQLite binds. `$1`, `$2`, … are SQLite named
 * parameters, and `better-sqlite3` binds them from an object keyed by number.
 */
function bindParameters(params: readonly unknown[]): Record<string, unknown> {
  const bound: Record<string, unknown> = {};
  params.forEach((value, index) => {
    let converted = value;
    if (typeof value === 'boolean') {
      converted = value ? 1 : 0;
    } else if (value === undefined) {
      converted = null;
    }
    bound[String(index + 1)] = converted;
  });
  return bound;
}

class SqliteTransaction implements StoreTransaction {
  readonly dialect = 'sqlite' as const;
  private open = true;

  constructor(private readonly connection: SqliteConnection) {}

  async query<Row extends Record<string, unknown> = Record<string, unknown>>(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    const statement = this.prepare(sql);
    if (!statement.reader) {
      statement.run(bindParameters(params));
      return [];
    }
    return statement.all(bindParameters(params)) as Row[];
  }

  async execute(sql: string, params: readonly unknown[] = []): Promise<{ rowCount: number }> {
    const statement = this.prepare(sql);
    if (statement.reader) {
      return { rowCount: statement.all(bindParameters(params)).length };
    }
    return { rowCount: statement.run(bindParameters(params)).changes };
  }

  close(): void {
    this.open = false;
  }

  private prepare(sql: string): Database.Statement {
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
    return this.connection.prepare(sql);
  }
}

class SqliteConnection {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(readonly database: Database.Database) {}

  prepare(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.database.prepare(sql);
      if (this.statements.size >= STATEMENT_CACHE_SIZE) {
        const oldest = this.statements.keys().next().value as string;
        this.statements.delete(oldest);
      }
      this.statements.set(sql, statement);
    }
    return statement;
  }
}

/**
 * Sets WAL mode, retrying for up to `busyTimeoutMs`. When two processes open a
 * new file at the same moment, the switch was seen to fail with "database is
 * locked" at once instead of waiting in the busy handler.
 */
function switchToWal(database: Database.Database, busyTimeoutMs: number): void {
  const deadline = Date.now() + busyTimeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));

  for (;;) {
    try {
      database.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      const busy = (error as { code?: string }).code === 'SQLITE_BUSY';
      if (!busy || Date.now() >= deadline) {
        throw error;
      }
      Atomics.wait(pause, 0, 0, WAL_RETRY_PAUSE_MS);
    }
  }
}

export class SqliteDriver implements StoreDriver {
  readonly dialect = 'sqlite' as const;
  private readonly connection: SqliteConnection;
  private readonly queue: TaskQueue;
  private readonly queueKey: string;
  private closed = false;

  constructor(filename: string, options: SqliteDriverOptions = {}) {
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    const database = new Database(filename, { timeout: busyTimeoutMs });

    try {
      switchToWal(database, busyTimeoutMs);
      database.pragma('foreign_keys = ON');
    } catch (error) {
      database.close();
      throw error;
    }

    this.connection = new SqliteConnection(database);
    this.queueKey = filename === ':memory:' || filename === '' ? `memory:${Math.random()}` : realpathSync(resolve(filename));

    let entry = queuesByFile.get(this.queueKey);
    if (entry === undefined) {
      entry = { queue: new TaskQueue(), connections: 0 };
      queuesByFile.set(this.queueKey, entry);
    }
    entry.connections += 1;
    this.queue = entry.queue;
  }

  transaction<T>(fn: (tx: StoreTransaction) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    if (this.closed) {
      return Promise.reject(new CodePayError('internal', 'The purchase store is closed; open a new one with openStore().'));
    }
    const outer = activeTransaction.getStore();
    if (outer !== undefined && outer.queue === this.queue && outer.running) {
      return Promise.reject(
        new CodePayError(
          'internal',
          'A store method was called inside a grant handler or store transaction. Use the `tx` argument for database work there: ' +
            'the store runs one transaction at a time per database file, so this call would wait forever.',
        ),
      );
    }

    return this.queue.run(() => this.runTransaction(fn, options));
  }

  async close(): Promise<void> {
    if (this.closed) {
      return;
    }
    this.closed = true;

    await this.queue.drain();
    this.connection.database.close();

    const entry = queuesByFile.get(this.queueKey);
    if (entry !== undefined) {
      entry.connections -= 1;
      if (entry.connections === 0) {
        queuesByFile.delete(this.queueKey);
      }
    }
  }

  private async runTransaction<T>(fn: (tx: StoreTransaction) => Promise<T>, options: TransactionOptions): Promise<T> {
    const database = this.connection.database;
    database.exec(options.readOnly === true ? 'BEGIN DEFERRED' : 'BEGIN IMMEDIATE');

    const tx = new SqliteTransaction(this.connection);
    const context = { queue: this.queue, running: true };
    let result: T;
    try {
      result = await activeTransaction.run(context, () => fn(tx));
    } catch (error) {
      context.running = false;
      tx.close();
      this.rollback();
      throw error;
    }

    context.running = false;
    tx.close();
    try {
      database.exec('COMMIT');
    } catch (error) {
      this.rollback();
      throw error;
    }
    return result;
  }

  private rollback(): void {
    if (this.connection.database.inTransaction) {
      this.connection.database.exec('ROLLBACK');
    }
  }
}
