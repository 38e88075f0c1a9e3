// Schema migrations of the purchase store, in order. Each migration runs once,
// inside one transaction with the row that records its version, so a crash
// mid-migration leaves the previous version intact. Table names start with
// `code_pay_` so that they never clash with a game's own tables in the same
// database.

import type { Logger } from 'pino';
import { ConfigError } from '../errors.js';
import type { StoreDriver } from './driver.js';
import type { StoreTransaction } from './types.js';

type Dialect = StoreTransaction['dialect'];

export interface Migration {
  version: number;
  name: string;
  /** The DDL statements, one per string, written for the given dialect. */
  statements(dialect: Dialect): string[];
}

/** Column types that differ between SQLite and PostgreSQL. */
interface ColumnTypes {
  /** Milliseconds since the epoch and other integers beyond 2^31. */
  bigint: string;
  /** A JavaScript number, stored so that it reads back bit for bit. */
  double: string;
  /** An auto-incrementing integer primary key. */
  serialKey: string;
}

function columnTypes(dialect: Dialect): ColumnTypes {
  if (dialect === 'postgres') {
    return {
      bigint: 'BIGINT',
      double: 'DOUBLE PRECISION',
      serialKey: 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY',
    };
  }

  // SQLite stores every integer in up to 8 bytes, and only `INTEGER PRIMARY
  // KEY` aliases the rowid; AUTOINCREMENT stops ids of deleted rows from being reused.
  return {
    bigint: 'INTEGER',
    double: 'REAL',
    serialKey: 'INTEGER PRIMARY KEY AUTOINCREMENT',
  };
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'purchases, transition log, unique item holds and owners, payment reviews',
    statements(dialect) {
      const types = columnTypes(dialect);
      return [
        `CREATE TABLE code_pay_purchases (
          id TEXT PRIMARY KEY,
          idempotency_key TEXT NOT NULL UNIQUE,
          player_id TEXT NOT NULL,
          item_id TEXT NOT NULL,
          kind TEXT NOT NULL CHECK (kind IN ('unique', 'permanent', 'consumable')),
          state TEXT NOT NULL CHECK (state IN ('pending', 'paid', 'granted', 'cancelled', 'expired', 'failed')),
          intent_id TEXT NOT NULL UNIQUE,
          client_secret TEXT NOT NULL,
          amount ${types.double} NOT NULL CHECK (amount > 0),
          currency TEXT NOT NULL,
          destination TEXT NOT NULL,
          attempt_id TEXT,
          created_at ${types.bigint} NOT NULL,
          updated_at ${types.bigint} NOT NULL,
          next_check_at ${types.bigint},
          check_attempts INTEGER NOT NULL DEFAULT 0,
          next_grant_at ${types.bigint},
          grant_attempts INTEGER NOT NULL DEFAULT 0,
          last_grant_error TEXT,
          paid_at ${types.bigint},
          granted_at ${types.bigint},
          failure_reason TEXT
        )`,
        `CREATE INDEX code_pay_purchases_player ON code_pay_purchases (player_id, created_at)`,
        `CREATE INDEX code_pay_purchases_check_due ON code_pay_purchases (next_check_at) WHERE next_check_at IS NOT NULL`,
        `CREATE INDEX code_pay_purchases_grant_due ON code_pay_purchases (next_grant_at) WHERE next_grant_at IS NOT NULL`,
        `CREATE INDEX code_pay_purchases_state ON code_pay_purchases (state, id)`,

        `CREATE TABLE code_pay_transitions (
          id ${types.serialKey},
          purchase_id TEXT NOT NULL REFERENCES code_pay_purchases (id),
          from_state TEXT,
          to_state TEXT NOT NULL,
          source TEXT NOT NULL,
          detail TEXT,
          at ${types.bigint} NOT NULL
        )`,
        `CREATE INDEX code_pay_transitions_purchase ON code_pay_transitions (purchase_id, id)`,

        `CREATE TABLE code_pay_holds (
          item_id TEXT PRIMARY KEY,
          player_id TEXT NOT NULL,
          expires_at ${types.bigint} NOT NULL
        )`,

        `CREATE TABLE code_pay_unique_owners (
          item_id TEXT PRIMARY KEY,
          player_id TEXT NOT NULL,
          purchase_id TEXT NOT NULL UNIQUE REFERENCES code_pay_purchases (id),
          granted_at ${types.bigint} NOT NULL
        )`,

        `CREATE TABLE code_pay_reviews (
          id ${types.serialKey},
          kind TEXT NOT NULL CHECK (kind IN ('unknown_intent', 'conflicting_payment')),
          intent_id TEXT NOT NULL,
          purchase_id TEXT,
          payload TEXT NOT NULL,
          created_at ${types.bigint} NOT NULL,
          UNIQUE (kind, intent_id)
        )`,
      ];
    },
  },
  {
    version: 2,
    name: 'leases of background work on purchases',
    statements(dialect) {
      const types = columnTypes(dialect);
      return [
        `ALTER TABLE code_pay_purchases ADD COLUMN lease_owner TEXT`,
        `ALTER TABLE code_pay_purchases ADD COLUMN lease_expires_at ${types.bigint}`,
      ];
    },
  },
];

/** Any constant key works, as long as every kit instance uses the same one. */
const POSTGRES_MIGRATION_LOCK = 7_160_223_001;

/**
 * Applies the migrations that the database lacks. Safe when several processes
 * open the same new database at once: on SQLite the transaction starts with
 * `BEGIN IMMEDIATE`, which takes the write lock before reading the version,
 * and on PostgreSQL a transaction-scoped advisory lock does the same.
 */
export async function runMigrations(driver: StoreDriver, logger: Logger, migrations: readonly Migration[] = MIGRATIONS): Promise<void> {
  const latest = migrations.at(-1)?.version ?? 0;

  await driver.transaction(async (tx) => {
    if (tx.dialect === 'postgres') {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [POSTGRES_MIGRATION_LOCK]);
    }

    await tx.execute(
      `CREATE TABLE IF NOT EXISTS code_pay_schema_version (
        version INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        applied_at ${columnTypes(tx.dialect).bigint} NOT NULL
      )`,
    );

    const rows = await tx.query<{ version: number | string }>('SELECT version FROM code_pay_schema_version');
    const applied = new Set(rows.map((row) => Number(row.version)));
    const newest = Math.max(0, ...applied);
    if (newest > latest) {
      throw new ConfigError(
        `The purchase store's schema is at version ${newest}, newer than the latest this kit knows (${latest}). ` +
          'Upgrade phaser-code-pay to the version that wrote this database.',
      );
    }

    for (const migration of migrations) {
      if (applied.has(migration.version)) {
        continue;
      }

      for (const statement of migration.statements(tx.dialect)) {
        await tx.execute(statement);
      }
      await tx.execute('INSERT INTO code_pay_schema_version (version, name, applied_at) VALUES ($1, $2, $3)', [
        migration.version,
        migration.name,
        Date.now(),
      ]);
      logger.info({ version: migration.version, migration: migration.name }, 'purchase store schema migrated');
    }
  });
}
