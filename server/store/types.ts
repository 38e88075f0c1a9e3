// The purchase store contract. One implementation per database (SQLite and
// PostgreSQL) behind the same interface, so the kit's logic never depends on
// the engine. Every method that changes state is atomic in the
// database and idempotent: calling it twice, or from two processes at once,
// leaves the same result as calling it once.

import type { Entitlements, Purchase, PurchaseKind, PurchaseState } from '../../protocol/index.js';

/** A purchase as stored: the protocol shape plus the server-only fields. */
export interface StoredPurchase extends Purchase {
  playerId: string;
  /** The idempotency key sent to Code; unique across the store. */
  idempotencyKey: string;
  /** Time of the next status check at the sequencer (ms since epoch), while the purchase is open. */
  nextCheckAt: number | null;
  /** How many status checks ran without news; drives the polling backoff. */
  checkAttempts: number;
  /** When the grant handler is next tried (ms since epoch), while the purchase is paid and not granted. */
  nextGrantAt: number | null;
  /** How many grant handler runs failed (counted by `recordGrantFailure`); drives the retry backoff. */
  grantAttempts: number;
  /** Last grant handler error message, for operators. */
  lastGrantError: string | null;
  paidAt: number | null;
  grantedAt: number | null;
  /** Failure reason of a failed purchase, for example `sequencer_rejected` or `conflicting_payment`. */
  failureReason: string | null;
}

/** The fields of a purchase the kit creates after the sequencer accepted its intent. */
export interface NewPurchase {
  id: string;
  idempotencyKey: string;
  playerId: string;
  itemId: string;
  kind: PurchaseKind;
  intentId: string;
  clientSecret: string;
  amount: number;
  currency: string;
  destination: string;
  attemptId?: string;
  createdAt: number;
  /** First status check, usually a few seconds after creation. */
  nextCheckAt: number;
}

/** The confirmation path or job that caused a transition, stored in the transition log. */
export type TransitionSource = 'create' | 'webhook' | 'poll' | 'revalidate' | 'reconcile' | 'grant' | 'expire' | 'stream';

export interface TransitionRequest {
  purchaseId: string;
  to: PurchaseState;
  source: TransitionSource;
  /** Free text for the log, for example the sequencer's message. Never a secret. */
  detail?: string;
  at: number;
  /** Set with `to: 'failed'`. */
  failureReason?: string;
}

export interface TransitionResult {
  purchase: StoredPurchase;
  /** False when the purchase was already in the target state or the rules forbid the move. */
  changed: boolean;
  from: PurchaseState;
}

/** One row of the transition log. */
export interface TransitionLogEntry {
  purchaseId: string;
  from: PurchaseState | null;
  to: PurchaseState;
  source: TransitionSource;
  detail: string | null;
  at: number;
}

/**
 * A statement runner bound to one open transaction. Placeholders are `$1`,
 * `$2`, … on every engine, so a game's grant handler runs unchanged on SQLite
 * and PostgreSQL.
 */
export interface StoreTransaction {
  readonly dialect: 'sqlite' | 'postgres';
  query<Row extends Record<string, unknown> = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  execute(sql: string, params?: readonly unknown[]): Promise<{ rowCount: number }>;
}

/**
 * The game's grant handler. It runs inside the store transaction that marks the
 * purchase granted: its writes through `tx` commit together with the mark, or
 * not at all when it throws.
 */
export type GrantHandler = (purchase: StoredPurchase, tx: StoreTransaction) => Promise<void> | void;

export type GrantOutcome =
  | { status: 'granted'; purchase: StoredPurchase }
  /** The purchase was granted before; nothing ran. */
  | { status: 'already_granted'; purchase: StoredPurchase }
  /** The purchase is not paid (pending, cancelled, expired or failed); nothing ran. */
  | { status: 'not_paid'; purchase: StoredPurchase }
  /** A `unique` item already owned by another player: recorded for refund, never granted; the purchase is failed. */
  | { status: 'conflict'; purchase: StoredPurchase };

export type HoldOutcome =
  /** A hold of `holderPlayerId` until `expiresAt`. From `acquireHold`, the holder is the caller, with a new or extended hold. */
  | { status: 'held'; expiresAt: number; holderPlayerId: string }
  /** A hold of another player, `holderPlayerId`, until `expiresAt`. Never send the holder's id to a client. */
  | { status: 'reserved'; expiresAt: number; holderPlayerId: string }
  /** The item was granted, to `ownerPlayerId`. */
  | { status: 'sold_out'; ownerPlayerId: string };

export type ReviewKind = 'unknown_intent' | 'conflicting_payment';

/** A payment that needs a person: a valid webhook for an unknown intent, or a payment for a unique item someone else owns. */
export interface PaymentReview {
  id: number;
  kind: ReviewKind;
  intentId: string;
  purchaseId: string | null;
  /** JSON of the verified webhook claims or the sequencer status. */
  payload: string;
  createdAt: number;
}

/**
 * A claim of background work (a status check or a grant retry) by one kit
 * instance. Until `expiresAt` no other instance claims the same purchase;
 * after it, for example when the owner died, any instance may.
 */
export interface Lease {
  /** Names the claiming kit instance, for operators; unique per process. */
  owner: string;
  /** The claim's clock (ms since epoch): leases that expired at or before it are free. */
  now: number;
  /** When the claim lapses unless the work ends it first (ms since epoch). */
  expiresAt: number;
}

export interface PurchaseStore {
  readonly dialect: 'sqlite' | 'postgres';

  /** Creates or upgrades the schema; safe to call from several processes at once. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  getById(purchaseId: string): Promise<StoredPurchase | undefined>;
  getByKey(idempotencyKey: string): Promise<StoredPurchase | undefined>;
  getByIntentId(intentId: string): Promise<StoredPurchase | undefined>;
  listByPlayer(playerId: string): Promise<StoredPurchase[]>;
  /** Counts granted purchases per item for a player. */
  entitlements(playerId: string): Promise<Entitlements>;
  transitions(purchaseId: string): Promise<TransitionLogEntry[]>;

  /**
   * Inserts a pending purchase, or returns the one already stored under the
   * same idempotency key (`created: false`), whatever its fields.
   */
  insertPurchase(purchase: NewPurchase): Promise<{ purchase: StoredPurchase; created: boolean }>;

  /**
   * Moves a purchase to `to` when the state machine allows it from the stored
   * state, in one conditional update with its log entry. Allowed moves:
   * pending → paid | cancelled | expired | failed; cancelled → paid | expired;
   * expired → paid | cancelled; paid → granted happens only through `grant`.
   * Moving to `paid` also schedules the grant (`nextGrantAt = at`) and clears
   * the status-check schedule.
   */
  transition(request: TransitionRequest): Promise<TransitionResult>;

  /**
   * Runs `handler` and the paid → granted change in one transaction. For a
   * `unique` item the same transaction marks it owned, or records a
   * conflicting payment when another player owns it.
   */
  grant(purchaseId: string, handler: GrantHandler, at: number): Promise<GrantOutcome>;
  /** Records a grant handler failure and when to try again. */
  recordGrantFailure(purchaseId: string, message: string, nextGrantAt: number): Promise<void>;
  /** Paid purchases whose grant is due at `now`, oldest first. */
  listGrantsDue(now: number, limit: number): Promise<StoredPurchase[]>;

  /** Open purchases (pending, cancelled, expired) whose status check is due at `now`, oldest first. */
  listChecksDue(now: number, limit: number): Promise<StoredPurchase[]>;
  /** Sets the next status check of an open purchase. */
  scheduleCheck(purchaseId: string, nextCheckAt: number | null, checkAttempts: number): Promise<void>;
  /** All open purchases, for start-up reconciliation, in pages after `afterId`. */
  listOpen(afterId: string | null, limit: number): Promise<StoredPurchase[]>;

  /**
   * Claims up to `limit` open purchases whose status check is due at
   * `lease.now` and which no live lease covers, oldest first. Two instances
   * calling at once never get the same purchase. The claim ends when the
   * check is rescheduled or the purchase changes state, or at `lease.expiresAt`.
   */
  claimChecksDue(lease: Lease, limit: number): Promise<StoredPurchase[]>;
  /** Claims up to `limit` paid purchases whose grant is due, as `claimChecksDue` does for status checks. */
  claimGrantsDue(lease: Lease, limit: number): Promise<StoredPurchase[]>;
  /** Claims those of the given open purchases that no live lease covers, whatever their schedule; for start-up reconciliation. */
  claimOpen(purchaseIds: readonly string[], lease: Lease): Promise<StoredPurchase[]>;

  /**
   * Takes or extends the hold on a `unique` item for a player. A paid, not
   * yet granted purchase of the item by another player makes it `reserved`.
   */
  acquireHold(itemId: string, playerId: string, now: number, expiresAt: number): Promise<HoldOutcome>;
  /**
   * The current holder (`held`) or owner (`sold_out`) of a `unique` item;
   * undefined when it is free. A player whose paid purchase waits for its
   * grant is the holder, even after their hold lapsed.
   */
  getHold(itemId: string, now: number): Promise<HoldOutcome | undefined>;

  /** Records a payment review once per kind and intent id; a repeat (a retried webhook) keeps the first row. */
  recordReview(review: Omit<PaymentReview, 'id'>): Promise<void>;
  listReviews(): Promise<PaymentReview[]>;

  /** Runs `fn` in one transaction; for the game's own reads and schema. */
  transaction<T>(fn: (tx: StoreTransaction) => Promise<T>): Promise<T>;
}
