// The small interface a database engine implements for `SqlPurchaseStore`.
// A driver owns one connection (or pool) and runs callbacks in transactions;
// all SQL lives in the store and uses `$1`, `$2`, … placeholders on every engine.

import type { StoreTransaction } from './types.js';

export interface TransactionOptions {
  /**
   * The callback only reads. SQLite then starts a deferred transaction, which
   * does not take the write lock; PostgreSQL may ignore it.
   */
  readOnly?: boolean;
}

export interface StoreDriver {
  readonly dialect: StoreTransaction['dialect'];

  /**
   * Runs `fn` in one database transaction: commits when it resolves, rolls
   * back and rethrows when it rejects. `tx` is valid only until then.
   */
  transaction<T>(fn: (tx: StoreTransaction) => Promise<T>, options?: TransactionOptions): Promise<T>;

  /** Waits for running transactions, then closes the connection. */
  close(): Promise<void>;
}
