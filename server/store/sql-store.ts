// The purchase store on SQL, for every engine behind a `StoreDriver`. The SQL
// runs unchanged on SQLite 3.45+ and PostgreSQL 15: `$1` placeholders,
// `INSERT … ON CONFLICT DO NOTHING`, conditional `UPDATE … WHERE state IN (…)
// RETURNING *`, and `FOR UPDATE` (with `SKIP LOCKED` for leases) only on
// PostgreSQL (SQLite's `BEGIN IMMEDIATE` already holds the write lock for the
// whole transaction).
//
// Uniqueness of idempotency keys and intent ids, the allowed state moves and
// the one grant per unique item are enforced by the database, so they hold
// across processes and restarts, not only inside this one.

import pino from 'pino';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Entitlements, PurchaseState } from '../../protocol/index.js';
import { OPEN_STATES } from '../../protocol/index.js';
import { CodePayError } from '../errors.js';
import { canTransition, isPurchaseState, statesThatCanTransitionTo } from '../purchase-state.js';
import type { StoreDriver } from './driver.js';
import {
  holdSchema,
  pageLimit,
  parseInput,
  parseNewPurchase,
  parseReview,
  parseTransitionRequest,
  truncateText,
} from './input.js';
import { runMigrations } from './migrations.js';
import { toPaymentReview, toStoredPurchase, toTransitionLogEntry } from './rows.js';
import type { PurchaseRow, ReviewRow, TransitionRow } from './rows.js';
import type {
  GrantHandler,
  GrantOutcome,
  HoldOutcome,
  Lease,
  NewPurchase,
  PaymentReview,
  PurchaseStore,
  StoreTransaction,
  StoredPurchase,
  TransitionLogEntry,
  TransitionRequest,
  TransitionResult,
  TransitionSource,
} from './types.js';

/** Formats states as a list of SQL literals. States are fixed constants here, never caller input. */
function stateList(states: readonly PurchaseState[]): string {
  return states
    .map((state) => {
      if (!isPurchaseState(state)) {
        throw new CodePayError('internal', `Invalid purchase state ${JSON.stringify(state)} in a store query.`);
      }
      return `'${state}'`;
    })
    .join(', ');
}

const OPEN_STATE_LIST = stateList(OPEN_STATES);

/** Ends the background work lease of a purchase; every write of its schedule or state does. */
const RELEASE_LEASE = 'lease_owner = NULL, lease_expires_at = NULL';

/** Returns the SQL condition that no live lease covers a purchase at the time `$param`. */
function leaseIsFree(param: string): string {
  return `(lease_expires_at IS NULL OR lease_expires_at <= ${param})`;
}

const INSERT_TRANSITION = `INSERT INTO code_pay_transitions (purchase_id, from_state, to_state, source, detail, at)
  VALUES ($1, $2, $3, $4, $5, $6)`;

interface TransitionLogLine {
  purchase: StoredPurchase;
  from: PurchaseState | null;
  source: TransitionSource;
}

/**
 * The `expiresAt` of a `reserved` outcome caused by another player's paid
 * purchase whose hold lapsed (ms after now). The reservation itself lasts
 * until that grant commits or fails; this is when a caller may ask again.
 */
const PAID_RESERVATION_RETRY_MS = 60_000;

/** Purchase, player and item ids, idempotency keys and intent ids. */
const idSchema = z.string().min(1).max(200);
const timestampSchema = z.number().int().nonnegative();
const leaseSchema = z
  .object({ owner: idSchema, now: timestampSchema, expiresAt: timestampSchema })
  .strict()
  .refine((lease) => lease.expiresAt > lease.now, 'expiresAt must be later than now');

function compareSchedule(a: number | null, b: number | null): number {
  return (a ?? 0) - (b ?? 0);
}

function compareIds(a: string, b: string): number {
  if (a === b) {
    return 0;
  }
  return a < b ? -1 : 1;
}

export class SqlPurchaseStore implements PurchaseStore {
  readonly dialect: StoreDriver['dialect'];
  private readonly logger: Logger;
  /** Locks the selected purchase row until commit; SQLite needs no row lock. */
  private readonly forUpdate: string;
  /** Skips rows another transaction has locked while claiming; SQLite runs one write transaction at a time. */
  private readonly skipLocked: string;

  constructor(
    private readonly driver: StoreDriver,
    logger?: Logger,
  ) {
    this.dialect = driver.dialect;
    this.logger = logger ?? pino({ name: 'phaser-code-pay.store' });
    this.forUpdate = driver.dialect === 'postgres' ? ' FOR UPDATE' : '';
    this.skipLocked = driver.dialect === 'postgres' ? ' FOR UPDATE SKIP LOCKED' : '';
  }

  migrate(): Promise<void> {
    return runMigrations(this.driver, this.logger);
  }

  close(): Promise<void> {
    return this.driver.close();
  }

  async getById(id: string): Promise<StoredPurchase | undefined> {
    parseInput(idSchema, id, 'getById');
    return this.read((tx) => this.selectPurchase(tx, 'id = $1', [id]));
  }

  async getByKey(idempotencyKey: string): Promise<StoredPurchase | undefined> {
    parseInput(idSchema, idempotencyKey, 'getByKey');
    return this.read((tx) => this.selectPurchase(tx, 'idempotency_key = $1', [idempotencyKey]));
  }

  async getByIntentId(intentId: string): Promise<StoredPurchase | undefined> {
    parseInput(idSchema, intentId, 'getByIntentId');
    return this.read((tx) => this.selectPurchase(tx, 'intent_id = $1', [intentId]));
  }

  async listByPlayer(playerId: string): Promise<StoredPurchase[]> {
    parseInput(idSchema, playerId, 'listByPlayer');
    return this.read((tx) => this.selectPurchases(tx, 'player_id = $1 ORDER BY created_at, id', [playerId]));
  }

  async entitlements(playerId: string): Promise<Entitlements> {
    parseInput(idSchema, playerId, 'entitlements');
    return this.read(async (tx) => {
      const rows = await tx.query<{ item_id: string; grants: number | string }>(
        `SELECT item_id, COUNT(*) AS grants FROM code_pay_purchases
          WHERE player_id = $1 AND state = 'granted' GROUP BY item_id ORDER BY item_id`,
        [playerId],
      );

      const entitlements: Entitlements = {};
      for (const row of rows) {
        entitlements[row.item_id] = Number(row.grants);
      }
      return entitlements;
    });
  }

  async transitions(id: string): Promise<TransitionLogEntry[]> {
    parseInput(idSchema, id, 'transitions');
    return this.read(async (tx) => {
      const rows = await tx.query<TransitionRow>(
        'SELECT purchase_id, from_state, to_state, source, detail, at FROM code_pay_transitions WHERE purchase_id = $1 ORDER BY id',
        [id],
      );
      return rows.map(toTransitionLogEntry);
    });
  }

  async insertPurchase(input: NewPurchase): Promise<{ purchase: StoredPurchase; created: boolean }> {
    const purchase = parseNewPurchase(input);

    const result = await this.driver.transaction(async (tx) => {
      const inserted = await tx.query<PurchaseRow>(
        `INSERT INTO code_pay_purchases (
            id, idempotency_key, player_id, item_id, kind, state, intent_id, client_secret,
            amount, currency, destination, attempt_id, created_at, updated_at, next_check_at
          ) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $9, $10, $11, $12, $12, $13)
          ON CONFLICT DO NOTHING
          RETURNING *`,
        [
          purchase.id,
          purchase.idempotencyKey,
          purchase.playerId,
          purchase.itemId,
          purchase.kind,
          purchase.intentId,
          purchase.clientSecret,
          purchase.amount,
          purchase.currency,
          purchase.destination,
          purchase.attemptId ?? null,
          purchase.createdAt,
          purchase.nextCheckAt,
        ],
      );

      if (inserted.length === 1) {
        const stored = toStoredPurchase(inserted[0]);
        await tx.execute(INSERT_TRANSITION, [stored.id, null, 'pending', 'create', null, stored.createdAt]);
        return { purchase: stored, created: true };
      }

      // The insert hit a unique constraint. Under the same key, this is a retry
      // and returns the stored purchase. Under another key, the purchase id or
      // intent id is already taken, which is a bug in the caller.
      const existing = await this.selectPurchase(tx, 'idempotency_key = $1', [purchase.idempotencyKey]);
      if (existing === undefined) {
        throw new CodePayError(
          'invalid_request',
          `Invalid input to store.insertPurchase(): purchase id ${purchase.id} or intent id ${purchase.intentId} ` +
            'is already stored under another idempotency key. Derive both from the key, so that one key maps to one purchase.',
          { purchaseId: purchase.id, intentId: purchase.intentId, playerId: purchase.playerId },
        );
      }
      return { purchase: existing, created: false };
    });

    if (result.created) {
      this.logTransition({ purchase: result.purchase, from: null, source: 'create' });
    }
    return result;
  }

  async transition(input: TransitionRequest): Promise<TransitionResult> {
    const request = parseTransitionRequest(input);
    if (request.to === 'granted') {
      throw new CodePayError(
        'invalid_request',
        'Invalid input to store.transition(): a purchase becomes granted only through store.grant(), which runs the grant handler in the same transaction.',
        { purchaseId: request.purchaseId },
      );
    }

    const result = await this.driver.transaction(async (tx) => {
      const current = await this.selectPurchase(tx, `id = $1${this.forUpdate}`, [request.purchaseId]);
      if (current === undefined) {
        throw this.notFound(request.purchaseId);
      }
      if (!canTransition(current.state, request.to)) {
        return { purchase: current, changed: false, from: current.state };
      }

      const updated = await this.applyTransition(tx, current, request);
      return { purchase: updated, changed: true, from: current.state };
    });

    if (result.changed) {
      this.logTransition({ purchase: result.purchase, from: result.from, source: request.source });
    }
    return result;
  }

  async grant(id: string, handler: GrantHandler, at: number): Promise<GrantOutcome> {
    parseInput(idSchema, id, 'grant');
    parseInput(timestampSchema, at, 'grant');
    if (typeof handler !== 'function') {
      throw new CodePayError('invalid_request', 'Invalid input to store.grant(): the grant handler must be a function.', { purchaseId: id });
    }

    const outcome = await this.driver.transaction(async (tx): Promise<GrantOutcome> => {
      const current = await this.selectPurchase(tx, `id = $1${this.forUpdate}`, [id]);
      if (current === undefined) {
        throw this.notFound(id);
      }
      if (current.state === 'granted') {
        return { status: 'already_granted', purchase: current };
      }
      if (current.state !== 'paid') {
        return { status: 'not_paid', purchase: current };
      }

      if (current.kind === 'unique') {
        const owner = await this.claimUniqueItem(tx, current, at);
        if (owner !== undefined) {
          const failed = await this.recordConflict(tx, current, owner, at);
          return { status: 'conflict', purchase: failed };
        }
      }

      await handler({ ...current }, tx);

      const granted = await tx.query<PurchaseRow>(
        `UPDATE code_pay_purchases SET state = 'granted', updated_at = $2, granted_at = $2, next_grant_at = NULL, ${RELEASE_LEASE}
          WHERE id = $1 AND state = 'paid' RETURNING *`,
        [id, at],
      );
      if (granted.length !== 1) {
        throw new CodePayError('internal', `Purchase ${id} left the paid state while its grant ran; the grant was rolled back.`, {
          purchaseId: id,
        });
      }
      await tx.execute(INSERT_TRANSITION, [id, 'paid', 'granted', 'grant', null, at]);
      return { status: 'granted', purchase: toStoredPurchase(granted[0]) };
    });

    if (outcome.status === 'granted' || outcome.status === 'conflict') {
      this.logTransition({ purchase: outcome.purchase, from: 'paid', source: 'grant' });
    }
    return outcome;
  }

  async recordGrantFailure(id: string, message: string, nextGrantAt: number): Promise<void> {
    parseInput(idSchema, id, 'recordGrantFailure');
    parseInput(z.string(), message, 'recordGrantFailure');
    parseInput(timestampSchema, nextGrantAt, 'recordGrantFailure');

    await this.driver.transaction(async (tx) => {
      const updated = await tx.execute(
        `UPDATE code_pay_purchases SET last_grant_error = $2, next_grant_at = $3, grant_attempts = grant_attempts + 1, ${RELEASE_LEASE}
          WHERE id = $1 AND state = 'paid'`,
        [id, truncateText(message), nextGrantAt],
      );
      if (updated.rowCount === 0) {
        await this.requireExists(tx, id);
      }
    });
  }

  async listGrantsDue(now: number, limit: number): Promise<StoredPurchase[]> {
    parseInput(timestampSchema, now, 'listGrantsDue');
    parseInput(pageLimit, limit, 'listGrantsDue');
    return this.read((tx) =>
      this.selectPurchases(
        tx,
        `state = 'paid' AND next_grant_at IS NOT NULL AND next_grant_at <= $1 ORDER BY next_grant_at, id LIMIT $2`,
        [now, limit],
      ),
    );
  }

  async listChecksDue(now: number, limit: number): Promise<StoredPurchase[]> {
    parseInput(timestampSchema, now, 'listChecksDue');
    parseInput(pageLimit, limit, 'listChecksDue');
    return this.read((tx) =>
      this.selectPurchases(
        tx,
        `state IN (${OPEN_STATE_LIST}) AND next_check_at IS NOT NULL AND next_check_at <= $1 ORDER BY next_check_at, id LIMIT $2`,
        [now, limit],
      ),
    );
  }

  async scheduleCheck(id: string, nextCheckAt: number | null, checkAttempts: number): Promise<void> {
    parseInput(idSchema, id, 'scheduleCheck');
    parseInput(timestampSchema.nullable(), nextCheckAt, 'scheduleCheck');
    parseInput(z.number().int().nonnegative(), checkAttempts, 'scheduleCheck');

    await this.driver.transaction(async (tx) => {
      const updated = await tx.execute(
        `UPDATE code_pay_purchases SET next_check_at = $2, check_attempts = $3, ${RELEASE_LEASE} WHERE id = $1 AND state IN (${OPEN_STATE_LIST})`,
        [id, nextCheckAt, checkAttempts],
      );
      if (updated.rowCount === 0) {
        await this.requireExists(tx, id);
      }
    });
  }

  async listOpen(afterId: string | null, limit: number): Promise<StoredPurchase[]> {
    parseInput(idSchema.nullable(), afterId, 'listOpen');
    parseInput(pageLimit, limit, 'listOpen');
    return this.read((tx) => {
      if (afterId === null) {
        return this.selectPurchases(tx, `state IN (${OPEN_STATE_LIST}) ORDER BY id LIMIT $1`, [limit]);
      }
      return this.selectPurchases(tx, `state IN (${OPEN_STATE_LIST}) AND id > $1 ORDER BY id LIMIT $2`, [afterId, limit]);
    });
  }

  async claimChecksDue(lease: Lease, limit: number): Promise<StoredPurchase[]> {
    parseInput(leaseSchema, lease, 'claimChecksDue');
    parseInput(pageLimit, limit, 'claimChecksDue');
    return this.claim(
      lease,
      `state IN (${OPEN_STATE_LIST}) AND next_check_at IS NOT NULL AND next_check_at <= $3`,
      'ORDER BY next_check_at, id LIMIT $4',
      [limit],
      (a, b) => compareSchedule(a.nextCheckAt, b.nextCheckAt) || compareIds(a.id, b.id),
    );
  }

  async claimGrantsDue(lease: Lease, limit: number): Promise<StoredPurchase[]> {
    parseInput(leaseSchema, lease, 'claimGrantsDue');
    parseInput(pageLimit, limit, 'claimGrantsDue');
    return this.claim(
      lease,
      `state = 'paid' AND next_grant_at IS NOT NULL AND next_grant_at <= $3`,
      'ORDER BY next_grant_at, id LIMIT $4',
      [limit],
      (a, b) => compareSchedule(a.nextGrantAt, b.nextGrantAt) || compareIds(a.id, b.id),
    );
  }

  async claimOpen(purchaseIds: readonly string[], lease: Lease): Promise<StoredPurchase[]> {
    parseInput(z.array(idSchema).max(1_000), purchaseIds, 'claimOpen');
    parseInput(leaseSchema, lease, 'claimOpen');
    if (purchaseIds.length === 0) {
      return [];
    }

    const placeholders = purchaseIds.map((_, index) => `$${index + 4}`).join(', ');
    return this.claim(lease, `state IN (${OPEN_STATE_LIST}) AND id IN (${placeholders})`, 'ORDER BY id', [...purchaseIds], (a, b) =>
      compareIds(a.id, b.id),
    );
  }

  async acquireHold(itemId: string, playerId: string, now: number, expiresAt: number): Promise<HoldOutcome> {
    parseInput(holdSchema, { itemId, playerId, now, expiresAt }, 'acquireHold');

    return this.driver.transaction(async (tx): Promise<HoldOutcome> => {
      const owner = await this.selectOwner(tx, itemId);
      if (owner !== undefined) {
        return { status: 'sold_out', ownerPlayerId: owner.player_id };
      }

      // A paid purchase of another player that waits for its grant reserves
      // the item, even when its hold lapsed, so no other player starts paying for
      // an item that is about to be granted.
      const payer = await this.selectPaidUniquePayer(tx, itemId, playerId);
      if (payer !== undefined) {
        const hold = await this.selectHold(tx, itemId);
        const holdOfPayer = hold !== undefined && hold.player_id === payer && Number(hold.expires_at) > now;
        return {
          status: 'reserved',
          expiresAt: holdOfPayer ? Number(hold.expires_at) : now + PAID_RESERVATION_RETRY_MS,
          holderPlayerId: payer,
        };
      }

      // One statement takes a free or lapsed hold, or extends the caller's own
      // (never shortening it), so concurrent callers on PostgreSQL cannot both win.
      const claimedHold = await tx.query<{ player_id: string; expires_at: number | string }>(
        `INSERT INTO code_pay_holds (item_id, player_id, expires_at) VALUES ($1, $2, $3)
          ON CONFLICT (item_id) DO UPDATE SET
            expires_at = CASE
              WHEN code_pay_holds.player_id = excluded.player_id AND code_pay_holds.expires_at > excluded.expires_at
                THEN code_pay_holds.expires_at
              ELSE excluded.expires_at
            END,
            player_id = excluded.player_id
          WHERE code_pay_holds.player_id = excluded.player_id OR code_pay_holds.expires_at <= $4
          RETURNING player_id, expires_at`,
        [itemId, playerId, expiresAt, now],
      );
      if (claimedHold.length === 1) {
        return { status: 'held', expiresAt: Number(claimedHold[0].expires_at), holderPlayerId: playerId };
      }

      const hold = await this.selectHold(tx, itemId);
      if (hold === undefined) {
        throw new CodePayError('internal', `The hold on item ${itemId} vanished while it was being taken; retry the request.`, { itemId });
      }
      return { status: 'reserved', expiresAt: Number(hold.expires_at), holderPlayerId: hold.player_id };
    });
  }

  async getHold(itemId: string, now: number): Promise<HoldOutcome | undefined> {
    parseInput(idSchema, itemId, 'getHold');
    parseInput(timestampSchema, now, 'getHold');

    return this.read(async (tx): Promise<HoldOutcome | undefined> => {
      const owner = await this.selectOwner(tx, itemId);
      if (owner !== undefined) {
        return { status: 'sold_out', ownerPlayerId: owner.player_id };
      }

      const hold = await this.selectHold(tx, itemId);
      if (hold !== undefined && Number(hold.expires_at) > now) {
        return { status: 'held', expiresAt: Number(hold.expires_at), holderPlayerId: hold.player_id };
      }

      // A paid purchase waiting for its grant keeps the item, as in acquireHold.
      const payer = await this.selectPaidUniquePayer(tx, itemId, null);
      if (payer !== undefined) {
        return { status: 'held', expiresAt: now + PAID_RESERVATION_RETRY_MS, holderPlayerId: payer };
      }
      return undefined;
    });
  }

  async recordReview(input: Omit<PaymentReview, 'id'>): Promise<void> {
    const review = parseReview(input);
    await this.driver.transaction((tx) => this.insertReview(tx, review));
  }

  async listReviews(): Promise<PaymentReview[]> {
    return this.read(async (tx) => {
      const rows = await tx.query<ReviewRow>(
        'SELECT id, kind, intent_id, purchase_id, payload, created_at FROM code_pay_reviews ORDER BY id',
      );
      return rows.map(toPaymentReview);
    });
  }

  async transaction<T>(fn: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    if (typeof fn !== 'function') {
      throw new CodePayError('invalid_request', 'Invalid input to store.transaction(): expected a function.');
    }
    return this.driver.transaction(fn);
  }

  /**
   * Sets the lease on the rows that match `condition` and no live lease
   * covers, in one statement. The condition and the lease check repeat in the
   * outer `WHERE`, because PostgreSQL rechecks only those on a row that
   * another transaction changed meanwhile. Parameters: `$1` owner, `$2`
   * expiry, `$3` now, then `extraParams`.
   */
  private async claim(
    lease: Lease,
    condition: string,
    orderAndLimit: string,
    extraParams: readonly unknown[],
    compare: (a: StoredPurchase, b: StoredPurchase) => number,
  ): Promise<StoredPurchase[]> {
    const rows = await this.driver.transaction((tx) =>
      tx.query<PurchaseRow>(
        `UPDATE code_pay_purchases SET lease_owner = $1, lease_expires_at = $2
          WHERE ${condition} AND ${leaseIsFree('$3')} AND id IN (
            SELECT id FROM code_pay_purchases WHERE ${condition} AND ${leaseIsFree('$3')} ${orderAndLimit}${this.skipLocked}
          )
          RETURNING *`,
        [lease.owner, lease.expiresAt, lease.now, ...extraParams],
      ),
    );
    return rows.map(toStoredPurchase).sort(compare);
  }

  private read<T>(fn: (tx: StoreTransaction) => Promise<T>): Promise<T> {
    return this.driver.transaction(fn, { readOnly: true });
  }

  private async selectPurchase(tx: StoreTransaction, where: string, params: readonly unknown[]): Promise<StoredPurchase | undefined> {
    const rows = await tx.query<PurchaseRow>(`SELECT * FROM code_pay_purchases WHERE ${where}`, params);
    return rows.length === 0 ? undefined : toStoredPurchase(rows[0]);
  }

  private async selectPurchases(tx: StoreTransaction, whereAndOrder: string, params: readonly unknown[]): Promise<StoredPurchase[]> {
    const rows = await tx.query<PurchaseRow>(`SELECT * FROM code_pay_purchases WHERE ${whereAndOrder}`, params);
    return rows.map(toStoredPurchase);
  }

  private async selectOwner(tx: StoreTransaction, itemId: string) {
    const rows = await tx.query<{ player_id: string; purchase_id: string }>(
      'SELECT player_id, purchase_id FROM code_pay_unique_owners WHERE item_id = $1',
      [itemId],
    );
    return rows[0];
  }

  /**
   * Returns the player of the oldest paid, not yet granted purchase of a
   * unique item, leaving out `exceptPlayerId` unless it is null.
   */
  private async selectPaidUniquePayer(tx: StoreTransaction, itemId: string, exceptPlayerId: string | null): Promise<string | undefined> {
    const rows = await tx.query<{ player_id: string }>(
      `SELECT player_id FROM code_pay_purchases
        WHERE item_id = $1 AND kind = 'unique' AND state = 'paid' AND (CAST($2 AS TEXT) IS NULL OR player_id <> CAST($2 AS TEXT))
        ORDER BY paid_at, id LIMIT 1`,
      [itemId, exceptPlayerId],
    );
    return rows[0]?.player_id;
  }

  private async selectHold(tx: StoreTransaction, itemId: string) {
    const rows = await tx.query<{ player_id: string; expires_at: number | string }>(
      'SELECT player_id, expires_at FROM code_pay_holds WHERE item_id = $1',
      [itemId],
    );
    return rows[0];
  }

  /**
   * Applies one conditional update and writes its log row. The `WHERE state IN (…)` repeats
   * the state machine's check in the database, so a concurrent move on
   * another connection can never be overwritten.
   */
  private async applyTransition(tx: StoreTransaction, current: StoredPurchase, request: TransitionRequest): Promise<StoredPurchase> {
    const sources = stateList(statesThatCanTransitionTo(request.to));

    let assignments = `state = $2, updated_at = $3, ${RELEASE_LEASE}`;
    const params: unknown[] = [request.purchaseId, request.to, request.at];
    if (request.to === 'paid') {
      // Payment ends polling and starts grant delivery at once.
      assignments += ', paid_at = $3, next_grant_at = $3, next_check_at = NULL';
    } else if (request.to === 'failed') {
      assignments += ', failure_reason = $4, next_check_at = NULL, next_grant_at = NULL';
      params.push(request.failureReason);
    }

    const rows = await tx.query<PurchaseRow>(
      `UPDATE code_pay_purchases SET ${assignments} WHERE id = $1 AND state IN (${sources}) RETURNING *`,
      params,
    );
    if (rows.length !== 1) {
      throw new CodePayError(
        'internal',
        `Purchase ${request.purchaseId} changed state during its transition to ${request.to}; nothing was written, retry the transition.`,
        { purchaseId: request.purchaseId },
      );
    }

    const detail = request.detail === undefined ? null : truncateText(request.detail);
    await tx.execute(INSERT_TRANSITION, [request.purchaseId, current.state, request.to, request.source, detail, request.at]);
    return toStoredPurchase(rows[0]);
  }

  /**
   * Marks a unique item owned by `purchase`, or returns the owner when another
   * purchase owns it already. Runs in the grant's transaction, so the mark
   * rolls back with the grant when the handler throws.
   */
  private async claimUniqueItem(
    tx: StoreTransaction,
    purchase: StoredPurchase,
    at: number,
  ): Promise<{ player_id: string; purchase_id: string } | undefined> {
    const claimed = await tx.execute(
      `INSERT INTO code_pay_unique_owners (item_id, player_id, purchase_id, granted_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT DO NOTHING`,
      [purchase.itemId, purchase.playerId, purchase.id, at],
    );
    if (claimed.rowCount === 1) {
      return undefined;
    }

    const owner = await this.selectOwner(tx, purchase.itemId);
    if (owner === undefined || owner.purchase_id === purchase.id) {
      return undefined;
    }
    return owner;
  }

  /** Fails a paid purchase of a unique item someone else owns and records it for refund review. */
  private async recordConflict(
    tx: StoreTransaction,
    purchase: StoredPurchase,
    owner: { player_id: string; purchase_id: string },
    at: number,
  ): Promise<StoredPurchase> {
    const rows = await tx.query<PurchaseRow>(
      `UPDATE code_pay_purchases SET state = 'failed', updated_at = $2, failure_reason = 'conflicting_payment', next_grant_at = NULL, ${RELEASE_LEASE}
        WHERE id = $1 AND state = 'paid' RETURNING *`,
      [purchase.id, at],
    );
    await tx.execute(INSERT_TRANSITION, [
      purchase.id,
      'paid',
      'failed',
      'grant',
      `unique item ${purchase.itemId} is owned by purchase ${owner.purchase_id}`,
      at,
    ]);

    const payload = JSON.stringify({
      itemId: purchase.itemId,
      playerId: purchase.playerId,
      amount: purchase.amount,
      currency: purchase.currency,
      destination: purchase.destination,
      paidAt: purchase.paidAt,
      ownerPurchaseId: owner.purchase_id,
      ownerPlayerId: owner.player_id,
    });
    await this.insertReview(tx, { kind: 'conflicting_payment', intentId: purchase.intentId, purchaseId: purchase.id, payload, createdAt: at });

    return toStoredPurchase(rows[0]);
  }

  private async insertReview(tx: StoreTransaction, review: Omit<PaymentReview, 'id'>): Promise<void> {
    await tx.execute(
      `INSERT INTO code_pay_reviews (kind, intent_id, purchase_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (kind, intent_id) DO NOTHING`,
      [review.kind, review.intentId, review.purchaseId, review.payload, review.createdAt],
    );
  }

  private async requireExists(tx: StoreTransaction, id: string): Promise<void> {
    const rows = await tx.query('SELECT id FROM code_pay_purchases WHERE id = $1', [id]);
    if (rows.length === 0) {
      throw this.notFound(id);
    }
  }

  private notFound(id: string): CodePayError {
    return new CodePayError('not_found', `Purchase ${id} was not found in the purchase store.`, { purchaseId: id });
  }

  /**
   * Logs each committed state change at debug level, never with the client
   * secret. The kit logs the same change at info level with its context, so
   * production logs keep one line per transition.
   */
  private logTransition(line: TransitionLogLine): void {
    const fields = { purchaseId: line.purchase.id, intentId: line.purchase.intentId, playerId: line.purchase.playerId };
    this.logger.child(fields).debug(
      { from: line.from, to: line.purchase.state, source: line.source, itemId: line.purchase.itemId },
      'purchase state changed',
    );
  }
}
