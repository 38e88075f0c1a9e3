// Creating a purchase: from a player's request to a stored purchase whose
// intent the sequencer accepted. The sequencer must accept the intent before
// anything is stored, identical requests on this instance share one
// `SendMessage`, and a retry of a scope returns its stored purchase.

import { randomUUID } from 'node:crypto';

import type { Logger } from 'pino';

import { ATTEMPT_ID_PATTERN, isOpenState, type CatalogItem, type PurchaseRequest } from '../protocol/index.js';
import { isPastDeadline, type CheckSchedule } from './check-schedule.js';
import { crashPoint } from './crash-points.js';
import { CodePayError } from './errors.js';
import { deriveIntent } from './intent.js';
import { deriveIdempotencyKey } from './keys.js';
import type { KitMetrics } from './metrics.js';
import { purchaseLogFields } from './purchase-fields.js';
import type { SequencerClient } from './sequencer.js';
import type { PurchaseStore, StoredPurchase } from './store/types.js';

/** Maximum length of a player id; the store accepts ids of up to 200 characters. */
export const MAX_PLAYER_ID_LENGTH = 200;

export interface PurchaseCreationOptions {
  gameId: string;
  catalog: ReadonlyMap<string, CatalogItem>;
  /** Base58 address of the wallet that receives every payment. */
  destination: string;
  keySecret: Uint8Array;
  store: PurchaseStore;
  sequencer: Pick<SequencerClient, 'sendMessage' | 'registerWebhook'>;
  /** Registered for each new intent when set. */
  webhookUrl?: string;
  logger: Logger;
  metrics: KitMetrics;
  schedule: CheckSchedule;
  /** Duration of a player's hold on a `unique` item after requesting it (ms). */
  uniqueHoldMs: number;
  now: () => number;
  /** Called once per purchase this instance inserted, after its webhook registration. */
  onCreated: (purchase: StoredPurchase) => void;
}

export class PurchaseCreation {
  private readonly options: PurchaseCreationOptions;
  private readonly catalog: ReadonlyMap<string, CatalogItem>;
  private readonly store: PurchaseStore;
  private readonly logger: Logger;
  private readonly metrics: KitMetrics;
  private readonly now: () => number;
  /** Creations in flight on this instance, by idempotency key, so identical requests share one `SendMessage`. */
  private readonly creating = new Map<string, Promise<StoredPurchase>>();

  constructor(options: PurchaseCreationOptions) {
    this.options = options;
    this.catalog = options.catalog;
    this.store = options.store;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.now = options.now;
  }

  /**
   * Returns the player's purchase for the request's scope, creating it and its
   * intent on the first request. Throws `CodePayError` with `unknown_item`,
   * `invalid_request`, `already_owned`, `reserved`, `sold_out`,
   * `sequencer_rejected` or `sequencer_unavailable`.
   */
  createPurchase(playerId: string, request: PurchaseRequest): Promise<StoredPurchase> {
    // Everything up to the in-flight lookup is synchronous, so identical
    // requests that arrive together find each other's promise.
    let scope: { item: CatalogItem; attemptId: string | undefined; idempotencyKey: string };
    try {
      scope = this.resolveScope(playerId, request);
    } catch (error) {
      return Promise.reject(error);
    }
    const { item, attemptId, idempotencyKey } = scope;

    const shared = this.creating.get(idempotencyKey);
    if (shared) {
      return shared;
    }

    const creation = this.createOnce(playerId, item, idempotencyKey, attemptId).finally(() => {
      this.creating.delete(idempotencyKey);
    });
    this.creating.set(idempotencyKey, creation);
    return creation;
  }

  /** Looks up the item, checks the player id and attempt id, and derives the idempotency key; throws `CodePayError`. */
  private resolveScope(
    playerId: string,
    request: PurchaseRequest,
  ): { item: CatalogItem; attemptId: string | undefined; idempotencyKey: string } {
    if (typeof playerId !== 'string' || playerId.length === 0 || playerId.length > MAX_PLAYER_ID_LENGTH) {
      throw new CodePayError('invalid_request', `Invalid player id: expected 1 to ${MAX_PLAYER_ID_LENGTH} characters.`);
    }

    const item = this.catalog.get(request.itemId);
    if (!item) {
      throw new CodePayError('unknown_item', `No catalog item has the id "${request.itemId}"; request one of the ids the catalog event returns.`, {
        playerId,
        itemId: request.itemId,
      });
    }

    const attemptId = this.attemptIdFor(item, request, playerId);
    const idempotencyKey = deriveIdempotencyKey(this.options.keySecret, {
      gameId: this.options.gameId,
      kind: item.kind,
      itemId: item.id,
      playerId,
      attemptId,
    });
    crashPoint('after-key-derivation');
    return { item, attemptId, idempotencyKey };
  }

  private async createOnce(playerId: string, item: CatalogItem, idempotencyKey: string, attemptId: string | undefined): Promise<StoredPurchase> {
    const startedAt = this.now();

    const existing = (await this.store.getByKey(idempotencyKey)) ?? (await this.findUnderAnotherKey(playerId, item));
    if (existing) {
      return this.resumeExisting(existing, item, playerId);
    }

    await this.checkAvailable(item, playerId);

    const intent = deriveIntent({
      idempotencyKey,
      amount: item.amount,
      currency: item.currency,
      destination: this.options.destination,
    });

    // The sequencer must accept the intent before anything is stored, so the
    // kit never hands out a client secret for an intent it refused. A repeat
    // of an accepted SendMessage (after a crash between here and the insert)
    // is accepted again by the sequencer.
    try {
      await this.options.sequencer.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId });
    } catch (error) {
      this.logger.warn(
        { playerId, itemId: item.id, intentId: intent.intentId, code: errorCode(error), err: error },
        'sequencer did not accept the intent; nothing was stored',
      );
      throw error;
    }
    crashPoint('after-send-message');

    const createdAt = this.now();
    const { purchase, created } = await this.store.insertPurchase({
      id: randomUUID(),
      idempotencyKey,
      playerId,
      itemId: item.id,
      kind: item.kind,
      intentId: intent.intentId,
      clientSecret: intent.clientSecret,
      amount: item.amount,
      currency: item.currency,
      destination: this.options.destination,
      attemptId,
      createdAt,
      nextCheckAt: createdAt + this.options.schedule.firstCheckAfterMs,
    });
    crashPoint('after-purchase-stored');

    if (!created) {
      // Another instance stored the same key first; its row is the purchase.
      return purchase;
    }

    this.metrics.observeCreation(Math.max(0, this.now() - startedAt) / 1000);
    await this.registerWebhook(purchase);
    this.options.onCreated(purchase);
    return purchase;
  }

  /** Returns the stored purchase of a retried scope, unless the item is no longer available to the player. */
  private async resumeExisting(existing: StoredPurchase, item: CatalogItem, playerId: string): Promise<StoredPurchase> {
    if (existing.state === 'granted' && existing.kind !== 'consumable') {
      throw new CodePayError('already_owned', `The player already owns "${existing.itemId}".`, purchaseLogFields(existing));
    }

    if (existing.state === 'failed' && existing.failureReason === 'conflicting_payment') {
      throw new CodePayError('sold_out', `"${existing.itemId}" was sold to another player.`, purchaseLogFields(existing));
    }

    if (existing.kind === 'unique' && isOpenState(existing.state)) {
      await this.holdUniqueItem(item, playerId, existing.createdAt);
    }

    if (isOpenState(existing.state) && isPastDeadline(existing, this.now(), this.options.schedule)) {
      // The player came back to an old purchase: restart the fast status checks,
      // because they may be about to pay it.
      await this.store.scheduleCheck(existing.id, this.now() + this.options.schedule.firstCheckAfterMs, 0);
    }

    return existing;
  }

  /**
   * Finds the player's open or paid purchase of a `unique` or `permanent` item
   * stored under another idempotency key, for example before a change of the
   * key secret or the game id. Without it, such a change would give the player
   * a second intent for an item they may already be paying for, and both
   * payments would be charged.
   */
  private async findUnderAnotherKey(playerId: string, item: CatalogItem): Promise<StoredPurchase | undefined> {
    if (item.kind === 'consumable') {
      return undefined;
    }

    const purchases = await this.store.listByPlayer(playerId);
    return purchases.find((purchase) => purchase.itemId === item.id && (isOpenState(purchase.state) || purchase.state === 'paid'));
  }

  /** Throws when the player may not start a new purchase of the item. */
  private async checkAvailable(item: CatalogItem, playerId: string): Promise<void> {
    if (item.kind === 'permanent') {
      // Covers grants stored under another key, for example before a key secret rotation.
      const owned = await this.store.entitlements(playerId);
      if ((owned[item.id] ?? 0) > 0) {
        throw new CodePayError('already_owned', `The player already owns "${item.id}".`, { playerId, itemId: item.id });
      }
    }

    if (item.kind === 'unique') {
      await this.holdUniqueItem(item, playerId);
    }
  }

  /**
   * Takes or keeps the player's hold on a `unique` item. Holds follow fixed
   * windows from the purchase's creation: the player may hold the item for
   * `uniqueHoldMs`, then not for the next `uniqueHoldMs`, and so on. Without
   * the pause, a player who retried every few seconds would extend the hold
   * forever, and no other player could buy the item.
   */
  private async holdUniqueItem(item: CatalogItem, playerId: string, purchaseCreatedAt?: number): Promise<void> {
    const now = this.now();
    const holdMs = this.options.uniqueHoldMs;
    const windowStart = purchaseCreatedAt ?? now;
    const phase = (now - windowStart) % (2 * holdMs);

    if (phase >= holdMs) {
      const seconds = Math.max(1, Math.ceil((2 * holdMs - phase) / 1000));
      throw new CodePayError(
        'reserved',
        `The player's hold on "${item.id}" lapsed without a payment, so other players may buy it now; the player can request it again in ${seconds} s, or pay the open purchase.`,
        { playerId, itemId: item.id },
      );
    }

    const hold = await this.store.acquireHold(item.id, playerId, now, now - phase + holdMs);

    if (hold.status === 'reserved') {
      const seconds = Math.max(1, Math.ceil((hold.expiresAt - now) / 1000));
      throw new CodePayError('reserved', `"${item.id}" is reserved for another player for up to ${seconds} s; try again later.`, {
        playerId,
        itemId: item.id,
      });
    }

    if (hold.status === 'sold_out') {
      if (hold.ownerPlayerId === playerId) {
        throw new CodePayError('already_owned', `The player already owns "${item.id}".`, { playerId, itemId: item.id });
      }
      throw new CodePayError('sold_out', `"${item.id}" was sold to another player.`, { playerId, itemId: item.id });
    }
  }

  private attemptIdFor(item: CatalogItem, request: PurchaseRequest, playerId: string): string | undefined {
    if (item.kind !== 'consumable') {
      // Unique and permanent purchases are one per player and item; an attempt id would not change the key.
      return undefined;
    }

    if (request.attemptId === undefined) {
      throw new CodePayError(
        'invalid_request',
        `"${item.id}" is a consumable, so the request needs an attemptId; generate one per purchase attempt and reuse it on every retry.`,
        { playerId, itemId: item.id },
      );
    }

    if (!ATTEMPT_ID_PATTERN.test(request.attemptId)) {
      throw new CodePayError('invalid_request', 'Invalid attemptId: expected 8 to 64 letters, digits, "-" or "_" (a UUID fits).', {
        playerId,
        itemId: item.id,
      });
    }
    return request.attemptId;
  }

  private async registerWebhook(purchase: StoredPurchase): Promise<void> {
    const url = this.options.webhookUrl;
    if (!url) {
      return;
    }

    // A failure is not fatal: polling and revalidate confirm the payment without the webhook.
    try {
      const result = await this.options.sequencer.registerWebhook(purchase.intentId, url);
      if (result === 'ok' || result === 'already_registered' || result === 'intent_exists') {
        return;
      }
      this.logger.warn({ ...purchaseLogFields(purchase), result }, 'webhook registration was not accepted; polling confirms this purchase');
    } catch (error) {
      this.logger.warn({ ...purchaseLogFields(purchase), err: error }, 'webhook registration failed; polling confirms this purchase');
    }
  }
}

function errorCode(error: unknown): string {
  return error instanceof CodePayError ? error.code : 'internal';
}
