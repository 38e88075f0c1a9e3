// The sandbox's SQLite file: payment requests (intents), the ledger, the
// webhook queue and the webhook signing key. Every write is synchronous
// (better-sqlite3), so a check and an insert made in the same synchronous
// call cannot interleave with another request in the same process.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { SandboxIntent, SandboxIntentStatus } from './context.js';

/** The path better-sqlite3 treats as a private in-memory database. */
export const IN_MEMORY_DATA_FILE = ':memory:';

/** A fee taker from the RequestToReceiveBill's `additionalFees`. */
export interface StoredFee {
  destination: string;
  basisPoints: number;
}

/** A stored intent with the request fields that the protocol compares on a repeat. */
export interface StoredIntent extends SandboxIntent {
  /** Set for kin (exact exchange data); fiat requests carry no rate. */
  exchangeRate?: number;
  /** Decimal string of the quarks in exact exchange data. */
  quarks?: string;
  fees: StoredFee[];
  /** Lower-case domain of a login request. */
  domain?: string;
}

export interface LedgerEntry {
  id: number;
  intentId: string;
  amount: number;
  currency: string;
  destination: string;
  /** Milliseconds since the Unix epoch. */
  chargedAt: number;
}

/** `registered` until the intent is paid, then `pending` until delivered or given up. */
export type WebhookState = 'registered' | 'pending' | 'delivered' | 'failed';

export interface WebhookRecord {
  intentId: string;
  url: string;
  state: WebhookState;
  /** Delivery attempts made so far. */
  attempts: number;
  /** Milliseconds since the Unix epoch; set while the state is `pending`. */
  nextAttemptAt?: number;
  lastError?: string;
  createdAt: number;
  updatedAt: number;
}

interface IntentRow {
  intent_id: string;
  destination: string;
  currency: string;
  amount: number;
  exchange_rate: number | null;
  quarks: string | null;
  fees: string;
  domain: string | null;
  status: SandboxIntentStatus;
  code_scanned: number;
  webhook_url: string | null;
  created_at: number;
  updated_at: number;
  paid_at: number | null;
}

interface LedgerRow {
  id: number;
  intent_id: string;
  amount: number;
  currency: string;
  destination: string;
  charged_at: number;
}

interface WebhookRow {
  intent_id: string;
  url: string;
  state: WebhookState;
  attempts: number;
  next_attempt_at: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS intents (
  intent_id TEXT PRIMARY KEY,
  destination TEXT NOT NULL,
  currency TEXT NOT NULL,
  amount REAL NOT NULL,
  exchange_rate REAL,
  quarks TEXT,
  fees TEXT NOT NULL,
  domain TEXT,
  status TEXT NOT NULL,
  code_scanned INTEGER NOT NULL,
  webhook_url TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  paid_at INTEGER
);
CREATE INDEX IF NOT EXISTS intents_by_status ON intents (status, created_at);
CREATE INDEX IF NOT EXISTS intents_by_created ON intents (created_at);
CREATE TABLE IF NOT EXISTS ledger (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  intent_id TEXT NOT NULL UNIQUE REFERENCES intents (intent_id),
  amount REAL NOT NULL,
  currency TEXT NOT NULL,
  destination TEXT NOT NULL,
  charged_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS webhooks (
  intent_id TEXT PRIMARY KEY REFERENCES intents (intent_id),
  url TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  next_attempt_at INTEGER,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhooks_due ON webhooks (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`;

function toIntent(row: IntentRow): StoredIntent {
  const intent: StoredIntent = {
    intentId: row.intent_id,
    destination: row.destination,
    currency: row.currency,
    amount: row.amount,
    status: row.status,
    codeScanned: row.code_scanned === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    fees: JSON.parse(row.fees) as StoredFee[],
  };
  if (row.webhook_url !== null) intent.webhookUrl = row.webhook_url;
  if (row.paid_at !== null) intent.paidAt = row.paid_at;
  if (row.exchange_rate !== null) intent.exchangeRate = row.exchange_rate;
  if (row.quarks !== null) intent.quarks = row.quarks;
  if (row.domain !== null) intent.domain = row.domain;
  return intent;
}

function toLedgerEntry(row: LedgerRow): LedgerEntry {
  return {
    id: row.id,
    intentId: row.intent_id,
    amount: row.amount,
    currency: row.currency,
    destination: row.destination,
    chargedAt: row.charged_at,
  };
}

function toWebhook(row: WebhookRow): WebhookRecord {
  const record: WebhookRecord = {
    intentId: row.intent_id,
    url: row.url,
    state: row.state,
    attempts: row.attempts,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.next_attempt_at !== null) record.nextAttemptAt = row.next_attempt_at;
  if (row.last_error !== null) record.lastError = row.last_error;
  return record;
}

export interface ListIntentsQuery {
  status?: SandboxIntentStatus;
  limit: number;
}

/** The sandbox's persistent state in one SQLite file (WAL mode). */
export class SandboxStore {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(dataFile: string) {
    if (dataFile !== IN_MEMORY_DATA_FILE) {
      mkdirSync(dirname(dataFile), { recursive: true });
    }
    this.db = new Database(dataFile);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.exec(SCHEMA);
  }

  close(): void {
    this.db.close();
  }

  /** Returns the prepared statement for `sql`, preparing it on first use. */
  private statement(sql: string): Database.Statement {
    let prepared = this.statements.get(sql);
    if (prepared === undefined) {
      prepared = this.db.prepare(sql);
      this.statements.set(sql, prepared);
    }
    return prepared;
  }

  /** Runs `work` in one SQLite transaction and returns its result. */
  transaction<T>(work: () => T): T {
    return this.db.transaction(work)();
  }

  getMeta(key: string): string | undefined {
    const row = this.statement('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  setMeta(key: string, value: string): void {
    this.statement('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  getIntent(intentId: string): StoredIntent | undefined {
    const row = this.statement('SELECT * FROM intents WHERE intent_id = ?').get(intentId) as IntentRow | undefined;
    return row === undefined ? undefined : toIntent(row);
  }

  /** Lists intents, newest first. */
  listIntents(query: ListIntentsQuery): StoredIntent[] {
    if (query.status === undefined) {
      const rows = this.statement('SELECT * FROM intents ORDER BY created_at DESC, intent_id LIMIT ?').all(query.limit);
      return (rows as IntentRow[]).map(toIntent);
    }

    const rows = this.statement('SELECT * FROM intents WHERE status = ? ORDER BY created_at DESC, intent_id LIMIT ?').all(
      query.status,
      query.limit,
    );
    return (rows as IntentRow[]).map(toIntent);
  }

  countIntents(): number {
    const row = this.statement('SELECT COUNT(*) AS count FROM intents').get() as { count: number };
    return row.count;
  }

  /** Inserts a new intent; returns false when one with the same id exists. */
  insertIntent(intent: StoredIntent): boolean {
    const result = this.statement(
        `INSERT INTO intents (intent_id, destination, currency, amount, exchange_rate, quarks, fees, domain,
           status, code_scanned, webhook_url, created_at, updated_at, paid_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (intent_id) DO NOTHING`,
      )
      .run(
        intent.intentId,
        intent.destination,
        intent.currency,
        intent.amount,
        intent.exchangeRate ?? null,
        intent.quarks ?? null,
        JSON.stringify(intent.fees),
        intent.domain ?? null,
        intent.status,
        intent.codeScanned ? 1 : 0,
        intent.webhookUrl ?? null,
        intent.createdAt,
        intent.updatedAt,
        intent.paidAt ?? null,
      );
    return result.changes === 1;
  }

  updateIntentStatus(intentId: string, status: SandboxIntentStatus, codeScanned: boolean, now: number): void {
    const paidAt = status === 'paid' ? now : null;
    this.statement(
        `UPDATE intents SET status = ?, code_scanned = ?, updated_at = ?, paid_at = COALESCE(paid_at, ?)
         WHERE intent_id = ?`,
      )
      .run(status, codeScanned ? 1 : 0, now, paidAt, intentId);
  }

  insertLedgerEntry(entry: Omit<LedgerEntry, 'id'>): LedgerEntry {
    const result = this.statement('INSERT INTO ledger (intent_id, amount, currency, destination, charged_at) VALUES (?, ?, ?, ?, ?)')
      .run(entry.intentId, entry.amount, entry.currency, entry.destination, entry.chargedAt);
    return { id: Number(result.lastInsertRowid), ...entry };
  }

  /** Lists charges, oldest first. */
  listLedger(): LedgerEntry[] {
    const rows = this.statement('SELECT * FROM ledger ORDER BY id').all() as LedgerRow[];
    return rows.map(toLedgerEntry);
  }

  getWebhook(intentId: string): WebhookRecord | undefined {
    const row = this.statement('SELECT * FROM webhooks WHERE intent_id = ?').get(intentId) as WebhookRow | undefined;
    return row === undefined ? undefined : toWebhook(row);
  }

  /** Inserts a `registered` webhook and sets the intent's URL; returns false when one exists. */
  insertWebhook(intentId: string, url: string, now: number): boolean {
    const result = this.statement(
        `INSERT INTO webhooks (intent_id, url, state, attempts, next_attempt_at, last_error, created_at, updated_at)
         VALUES (?, ?, 'registered', 0, NULL, NULL, ?, ?)
         ON CONFLICT (intent_id) DO NOTHING`,
      )
      .run(intentId, url, now, now);
    if (result.changes === 0) {
      return false;
    }
    this.statement('UPDATE intents SET webhook_url = ?, updated_at = ? WHERE intent_id = ?').run(url, now, intentId);
    return true;
  }

  /** Moves a registered webhook to `pending` with its first attempt due at `dueAt`. */
  scheduleWebhook(intentId: string, dueAt: number): boolean {
    const result = this.statement(
        `UPDATE webhooks SET state = 'pending', next_attempt_at = ?, updated_at = ?
         WHERE intent_id = ? AND state = 'registered'`,
      )
      .run(dueAt, dueAt, intentId);
    return result.changes === 1;
  }

  /** Records the outcome of one delivery attempt. */
  recordWebhookAttempt(
    intentId: string,
    outcome: { state: WebhookState; attempts: number; nextAttemptAt?: number; lastError?: string },
    now: number,
  ): void {
    this.statement(
        `UPDATE webhooks SET state = ?, attempts = ?, next_attempt_at = ?, last_error = ?, updated_at = ?
         WHERE intent_id = ?`,
      )
      .run(outcome.state, outcome.attempts, outcome.nextAttemptAt ?? null, outcome.lastError ?? null, now, intentId);
  }

  /** Lists pending webhooks due at or before `now`, earliest first, at most `limit`. */
  listDueWebhooks(now: number, limit: number): WebhookRecord[] {
    const rows = this.statement(
      `SELECT * FROM webhooks WHERE state = 'pending' AND next_attempt_at <= ?
       ORDER BY next_attempt_at, intent_id LIMIT ?`,
    ).all(now, limit) as WebhookRow[];
    return rows.map(toWebhook);
  }

  /** Returns the earliest due time of a pending webhook after `now`, or undefined when none is waiting. */
  nextWebhookDueAfter(now: number): number | undefined {
    const row = this.statement(
      `SELECT MIN(next_attempt_at) AS due FROM webhooks WHERE state = 'pending' AND next_attempt_at > ?`,
    ).get(now) as { due: number | null };
    return row.due ?? undefined;
  }

  listWebhooks(): WebhookRecord[] {
    const rows = this.statement('SELECT * FROM webhooks ORDER BY created_at, intent_id').all() as WebhookRow[];
    return rows.map(toWebhook);
  }
}
