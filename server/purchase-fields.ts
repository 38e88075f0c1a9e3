// The two views of a stored purchase that leave the purchase logic: the
// protocol shape sent to the owning player, and the ids written to logs.

import type { Purchase } from '../protocol/index.js';
import type { StoredPurchase } from './store/types.js';

/** Strips the server-only fields (player id, idempotency key, schedules) from a stored purchase. */
export function toPublicPurchase(stored: StoredPurchase): Purchase {
  const purchase: Purchase = {
    id: stored.id,
    itemId: stored.itemId,
    kind: stored.kind,
    state: stored.state,
    intentId: stored.intentId,
    clientSecret: stored.clientSecret,
    amount: stored.amount,
    currency: stored.currency,
    destination: stored.destination,
    createdAt: stored.createdAt,
    updatedAt: stored.updatedAt,
  };
  if (stored.attemptId !== undefined && stored.attemptId !== null) {
    purchase.attemptId = stored.attemptId;
  }
  return purchase;
}

/** Returns the ids that every log line about a purchase carries, never its client secret. */
export function purchaseLogFields(purchase: StoredPurchase): { purchaseId: string; intentId: string; playerId: string; itemId: string } {
  return { purchaseId: purchase.id, intentId: purchase.intentId, playerId: purchase.playerId, itemId: purchase.itemId };
}
