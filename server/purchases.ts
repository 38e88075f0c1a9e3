// The purchase service: creation (in purchase-creation.ts), confirmation,
// grants and the player's reads. Every confirmation path (webhook, polling,
// reconciliation, revalidate) ends in `confirmPaid`, which is idempotent, so
// any number of confirmations of one payment grant once.

import type { Logger } from 'pino';

import { isOpenState, type CatalogItem, type Entitlements, type PurchaseRequest, type PurchaseState } from '../protocol/index.js';
import { crashPoint } from './crash-points.js';
import { CodePayError } from './errors.js';
import { isPastDeadline, nextCheckAt, nextGrantAt, type CheckSchedule } from './check-schedule.js';
import type { ConfirmationSource, KitMetrics } from './metrics.js';
import type { IntentStatus, SequencerClient } from './sequencer.js';
import { PurchaseCreation } from './purchase-creation.js';
import { purchaseLogFields } from './purchase-fields.js';
import type { GrantHandler, PurchaseStore, StoredPurchase, TransitionSource } from './store/types.js';

export { purchaseLogFields, toPublicPurchase } from './purchase-fields.js';

export interface PurchaseServiceOptions {
  gameId: string;
  catalog: readonly CatalogItem[];
  /** Base58 address of the wallet that receives every payment. */
  destination: string;
  keySecret: Uint8Array;
  store: PurchaseStore;
  sequencer: Pick<SequencerClient, 'sendMessage' | 'getStatus' | 'registerWebhook'>;
  /** Registered for each new intent when set. */
  webhookUrl?: string;
  grant: GrantHandler;
  logger: Logger;
  metrics: KitMetrics;
  schedule: CheckSchedule;
  /** Duration of a player's hold on a `unique` item after requesting it (ms). */
  uniqueHoldMs: number;
  now?: () => number;
}

/**
 * A hint from the browser about the player's wallet. The sequencer's
 * `GetStatus` never reports a decline, so `cancelled` is only known from the
 * wallet's message stream, which reaches the browser and not the server.
 */
export type RevalidateHint = 'cancelled';

/** Outcome of a verified webhook. */
export type WebhookOutcome =
  | { status: 'confirmed'; purchase: StoredPurchase }
  | { status: 'unknown_intent' }
  | { status: 'mismatch'; reason: string; purchase: StoredPurchase };

export type PurchaseListener = (purchase: StoredPurchase) => void;

export class PurchaseService {
  readonly catalog: ReadonlyMap<string, CatalogItem>;

  private readonly options: PurchaseServiceOptions;
  private readonly store: PurchaseStore;
  private readonly logger: Logger;
  private readonly metrics: KitMetrics;
  private readonly now: () => number;
  private readonly listeners = new Set<PurchaseListener>();
  private readonly creation: PurchaseCreation;
  /** Grants in flight on this instance, by purchase id. */
  private readonly granting = new Map<string, Promise<StoredPurchase | undefined>>();
  /** Every operation in flight, so `drain` can wait for them. */
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(options: PurchaseServiceOptions) {
    this.options = options;
    this.store = options.store;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.now = options.now ?? Date.now;
    this.catalog = new Map(options.catalog.map((item) => [item.id, item]));
    this.creation = new PurchaseCreation({
      ...options,
      catalog: this.catalog,
      now: this.now,
      onCreated: (purchase) => {
        this.logTransition(purchase, null, 'create', 'sequencer accepted the intent');
        this.notify(purchase);
      },
    });
  }

  /** Calls `listener` after every change of a purchase (creation, transition, grant). Returns the unsubscribe function. */
  onUpdate(listener: PurchaseListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Waits for every creation, confirmation and grant in flight. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) {
      await Promise.allSettled([...this.inFlight]);
    }
  }

  /**
   * Returns the player's purchase for the request's scope, creating it and its
   * intent on the first request. Throws `CodePayError` with `unknown_item`,
   * `invalid_request`, `already_owned`, `reserved`, `sold_out`,
   * `sequencer_rejected` or `sequencer_unavailable`.
   */
  createPurchase(playerId: string, request: PurchaseRequest): Promise<StoredPurchase> {
    return this.track(this.creation.createPurchase(playerId, request));
  }

  /** Returns the player's purchase; throws `not_found` when it does not exist or belongs to another player. */
  async getPurchaseOf(playerId: string, purchaseId: string): Promise<StoredPurchase> {
    const purchase = await this.store.getById(purchaseId);
    if (!purchase || purchase.playerId !== playerId) {
      throw new CodePayError('not_found', `No purchase with the id "${purchaseId}" belongs to this player.`, { playerId, purchaseId });
    }
    return purchase;
  }

  listPurchases(playerId: string): Promise<StoredPurchase[]> {
    return this.store.listByPlayer(playerId);
  }

  entitlements(playerId: string): Promise<Entitlements> {
    return this.store.entitlements(playerId);
  }

  /**
   * Checks one of the player's purchases now: an open one with the sequencer,
   * a paid one by running its grant. With the hint `cancelled`, a pending
   * purchase the sequencer does not report as paid moves to `cancelled`
   * (which a later payment still overrides).
   */
  revalidate(playerId: string, purchaseId: string, hint?: RevalidateHint): Promise<StoredPurchase> {
    return this.track(this.revalidateOnce(playerId, purchaseId, hint));
  }

  /**
   * Asks the sequencer about an open purchase for the polling loop or the
   * start-up reconciliation, and schedules the next check when it is not
   * paid yet. Throws the sequencer's error after rescheduling.
   */
  pollPurchase(purchase: StoredPurchase, source: 'poll' | 'reconcile'): Promise<StoredPurchase> {
    return this.track(this.pollOnce(purchase, source));
  }

  /** Runs the grant of a paid purchase whose earlier attempt failed; for the grant retry loop. */
  retryGrant(purchaseId: string): Promise<StoredPurchase | undefined> {
    return this.deliverGrant(purchaseId);
  }

  /**
   * Applies a verified webhook. A payment for a known intent whose claims
   * match the pinned purchase is confirmed. One for an unknown intent is
   * recorded for review, and a mismatch changes nothing.
   */
  confirmWebhook(
    claims: { intent: string },
    checkClaims: (purchase: StoredPurchase) => string | undefined,
  ): Promise<WebhookOutcome> {
    return this.track(this.confirmWebhookOnce(claims, checkClaims));
  }

  /**
   * Moves a purchase to `paid` (from pending, cancelled or expired) and runs
   * its grant at once. Idempotent: a purchase already paid or granted is
   * returned as it is, after one more grant attempt when it is still paid.
   * With `waitForGrant: false` the grant runs in the background (still
   * tracked by `drain`), and the purchase is returned as paid.
   */
  async confirmPaid(
    purchase: StoredPurchase,
    source: ConfirmationSource,
    detail: string,
    { waitForGrant = true }: { waitForGrant?: boolean } = {},
  ): Promise<StoredPurchase> {
    const at = this.now();
    const result = await this.store.transition({ purchaseId: purchase.id, to: 'paid', source, detail, at });

    if (result.changed) {
      this.logTransition(result.purchase, result.from, source, detail);
      this.metrics.observeConfirmation(Math.max(0, at - purchase.createdAt) / 1000, source);
      this.notify(result.purchase);
    } else if (result.purchase.state === 'failed') {
      this.logger.warn(
        { ...purchaseLogFields(result.purchase), source, failureReason: result.purchase.failureReason },
        'payment confirmed for a failed purchase; nothing is granted, check the payment reviews for a refund',
      );
    }

    if (result.purchase.state !== 'paid') {
      return result.purchase;
    }
    if (!waitForGrant) {
      this.deliverGrant(result.purchase.id).catch((error: unknown) => {
        this.logger.error({ ...purchaseLogFields(result.purchase), err: error }, 'grant failed; the grant retry loop tries again');
      });
      return result.purchase;
    }
    return (await this.deliverGrant(result.purchase.id)) ?? result.purchase;
  }

  private async revalidateOnce(playerId: string, purchaseId: string, hint: RevalidateHint | undefined): Promise<StoredPurchase> {
    const purchase = await this.getPurchaseOf(playerId, purchaseId);

    if (purchase.state === 'paid') {
      return (await this.deliverGrant(purchase.id)) ?? purchase;
    }
    if (!isOpenState(purchase.state)) {
      return purchase;
    }

    const status = await this.options.sequencer.getStatus(purchase.intentId);
    if (status.intentSubmitted) {
      return this.confirmPaid(purchase, 'revalidate', describeStatus(status));
    }

    if (hint === 'cancelled' && purchase.state === 'pending') {
      return this.moveOpenPurchase(purchase, 'cancelled', 'stream', 'the browser reported that the player declined in the wallet');
    }
    return purchase;
  }

  private async pollOnce(purchase: StoredPurchase, source: 'poll' | 'reconcile'): Promise<StoredPurchase> {
    const checkAttempts = purchase.checkAttempts + 1;

    let status: IntentStatus;
    try {
      status = await this.options.sequencer.getStatus(purchase.intentId);
    } catch (error) {
      await this.store.scheduleCheck(purchase.id, nextCheckAt(purchase, checkAttempts, this.now(), this.options.schedule), checkAttempts);
      throw error;
    }

    if (status.intentSubmitted) {
      return this.confirmPaid(purchase, source, describeStatus(status));
    }

    let current = purchase;
    const now = this.now();
    if (current.state !== 'expired' && isPastDeadline(current, now, this.options.schedule)) {
      current = await this.moveOpenPurchase(current, 'expired', 'expire', 'no payment before the deadline');
    }

    if (isOpenState(current.state)) {
      await this.store.scheduleCheck(current.id, nextCheckAt(current, checkAttempts, now, this.options.schedule), checkAttempts);
    }
    return current;
  }

  private async moveOpenPurchase(purchase: StoredPurchase, to: 'cancelled' | 'expired', source: TransitionSource, detail: string): Promise<StoredPurchase> {
    const result = await this.store.transition({ purchaseId: purchase.id, to, source, detail, at: this.now() });
    if (result.changed) {
      this.logTransition(result.purchase, result.from, source, detail);
      this.notify(result.purchase);
    }
    return result.purchase;
  }

  private async confirmWebhookOnce(
    claims: { intent: string },
    checkClaims: (purchase: StoredPurchase) => string | undefined,
  ): Promise<WebhookOutcome> {
    const purchase = await this.store.getByIntentId(claims.intent);

    if (!purchase) {
      await this.store.recordReview({
        kind: 'unknown_intent',
        intentId: claims.intent,
        purchaseId: null,
        payload: JSON.stringify(claims),
        createdAt: this.now(),
      });
      this.logger.warn({ intentId: claims.intent }, 'webhook for an unknown intent; recorded for review');
      return { status: 'unknown_intent' };
    }

    const mismatch = checkClaims(purchase);
    if (mismatch !== undefined) {
      return { status: 'mismatch', reason: mismatch, purchase };
    }

    // The response to Code does not wait for the game's grant handler, so a slow handler cannot time the delivery out.
    const confirmed = await this.confirmPaid(purchase, 'webhook', 'verified webhook with state SUBMITTED', { waitForGrant: false });
    return { status: 'confirmed', purchase: confirmed };
  }

  /** Runs the grant handler for a paid purchase; on failure records the error and the next attempt. */
  private deliverGrant(purchaseId: string): Promise<StoredPurchase | undefined> {
    const shared = this.granting.get(purchaseId);
    if (shared) {
      return shared;
    }

    const delivery = this.track(this.grantOnce(purchaseId)).finally(() => {
      this.granting.delete(purchaseId);
    });
    this.granting.set(purchaseId, delivery);
    return delivery;
  }

  private async grantOnce(purchaseId: string): Promise<StoredPurchase | undefined> {
    let outcome;
    try {
      outcome = await this.store.grant(purchaseId, grantWithCrashPoint(this.options.grant), this.now());
    } catch (error) {
      return this.recordGrantFailure(purchaseId, error);
    }

    const purchase = outcome.purchase;
    if (outcome.status === 'granted') {
      crashPoint('after-grant-commit');
      this.logTransition(purchase, 'paid', 'grant', 'grant handler committed');
      this.notify(purchase);
    } else if (outcome.status === 'conflict') {
      this.logTransition(purchase, 'paid', 'grant', 'conflicting_payment');
      this.logger.warn(
        purchaseLogFields(purchase),
        'payment for a unique item another player owns; recorded as a conflicting payment for refund and not granted',
      );
      this.notify(purchase);
    }
    return purchase;
  }

  private async recordGrantFailure(purchaseId: string, error: unknown): Promise<StoredPurchase | undefined> {
    const purchase = await this.store.getById(purchaseId);
    if (!purchase || purchase.state !== 'paid') {
      // The failure was not the handler's (the purchase is gone or moved on); log it and let the caller see the state.
      this.logger.error({ purchaseId, err: error }, 'grant failed');
      return purchase;
    }

    const attempts = purchase.grantAttempts + 1;
    const retryAt = nextGrantAt(attempts, this.now(), this.options.schedule);
    const message = error instanceof Error ? error.message : String(error);
    await this.store.recordGrantFailure(purchaseId, message, retryAt);

    this.metrics.recordGrantFailure(purchase.itemId);
    this.logger.error(
      { ...purchaseLogFields(purchase), err: error, grantAttempts: attempts, retryAt: new Date(retryAt).toISOString() },
      'grant handler failed; the purchase stays paid and the grant is retried',
    );
    return (await this.store.getById(purchaseId)) ?? purchase;
  }

  private logTransition(purchase: StoredPurchase, from: PurchaseState | null, source: TransitionSource, detail: string): void {
    this.metrics.recordTransition(from ?? 'none', purchase.state);
    this.logger.info({ ...purchaseLogFields(purchase), from, to: purchase.state, source, detail }, 'purchase transition');
  }

  private notify(purchase: StoredPurchase): void {
    for (const listener of this.listeners) {
      try {
        listener(purchase);
      } catch (error) {
        this.logger.error({ ...purchaseLogFields(purchase), err: error }, 'purchase update listener failed');
      }
    }
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.inFlight.add(promise);
    promise.then(
      () => this.inFlight.delete(promise),
      () => this.inFlight.delete(promise),
    );
    return promise;
  }
}

/** Runs the game's grant handler, then the crash point inside the still open grant transaction. */
function grantWithCrashPoint(handler: GrantHandler): GrantHandler {
  return async (purchase, tx) => {
    await handler(purchase, tx);
    crashPoint('inside-grant-transaction');
  };
}

function describeStatus(status: IntentStatus): string {
  return `GetStatus: exists=${status.exists} codeScanned=${status.codeScanned} intentSubmitted=${status.intentSubmitted}`;
}

