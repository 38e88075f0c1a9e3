// The purchase state machine: which moves are allowed, which states are open
// and which are final. Pure functions only. The store builds its conditional
// updates (`UPDATE … WHERE state IN (…)`) from these tables, and the kit uses
// them to decide what a sequencer status means for a purchase.

import { PURCHASE_STATES, isFinalState, isOpenState } from '../protocol/index.js';
import type { PurchaseState } from '../protocol/index.js';
import { CodePayError } from './errors.js';

export { isFinalState, isOpenState };

/**
 * Allowed moves from each state. `cancelled` and `expired` stay open, so a late
 * payment still reaches `paid`. `granted` and `failed` are final.
 */
const MOVES: Readonly<Record<PurchaseState, readonly PurchaseState[]>> = {
  pending: ['paid', 'cancelled', 'expired', 'failed'],
  cancelled: ['paid', 'expired'],
  expired: ['paid', 'cancelled'],
  paid: ['granted', 'failed'],
  granted: [],
  failed: [],
};

/**
 * Moves that only the grant step makes, inside the transaction that runs the
 * game's grant handler: `paid → granted` when the handler commits, and
 * `paid → failed` for a conflicting payment of a `unique` item.
 */
const GRANT_MOVES: Readonly<Record<PurchaseState, readonly PurchaseState[]>> = {
  pending: [],
  cancelled: [],
  expired: [],
  paid: ['granted', 'failed'],
  granted: [],
  failed: [],
};

export function isPurchaseState(value: unknown): value is PurchaseState {
  return typeof value === 'string' && (PURCHASE_STATES as readonly string[]).includes(value);
}

/** Returns `value` as a state, or throws `invalid_request` naming the value. */
export function parsePurchaseState(value: unknown): PurchaseState {
  if (!isPurchaseState(value)) {
    throw new CodePayError(
      'invalid_request',
      `Invalid purchase state ${JSON.stringify(value)}: expected one of ${PURCHASE_STATES.join(', ')}.`,
    );
  }
  return value;
}

/** Returns true when the state machine allows `from → to` by any path, the grant step included. */
export function canMove(from: PurchaseState, to: PurchaseState): boolean {
  return MOVES[from].includes(to);
}

/** Returns true when only the grant step makes the move `from → to`. */
export function isGrantMove(from: PurchaseState, to: PurchaseState): boolean {
  return GRANT_MOVES[from].includes(to);
}

/** Returns true when a plain transition (webhook, polling, re-validation, expiry) may move `from → to`. */
export function canTransition(from: PurchaseState, to: PurchaseState): boolean {
  return canMove(from, to) && !isGrantMove(from, to);
}

/** Lists the states from which a plain transition may reach `to`. The list is empty for `granted`. */
export function statesThatCanTransitionTo(to: PurchaseState): PurchaseState[] {
  return PURCHASE_STATES.filter((from) => canTransition(from, to));
}
