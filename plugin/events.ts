// Every event the plugin emits, with its payload, in one place. Listen with
// `this.codePay.on(CodePayEvents.PURCHASE_GRANTED, (purchase) => ...)`.
import type { Entitlements, Purchase } from '../protocol/index.js';

/** A purchase was created or reported in the `pending` state: the intent waits for a payment. */
export const PURCHASE_PENDING = 'purchase:pending';
/** The sequencer reported the payment; the grant is on its way. */
export const PURCHASE_PAID = 'purchase:paid';
/** The game server committed the grant. Also emitted for a payment that arrives after the sheet was closed. */
export const PURCHASE_GRANTED = 'purchase:granted';
/** The player declined in their wallet. Not final: a later payment still grants the item. */
export const PURCHASE_CANCELLED = 'purchase:cancelled';
/** No payment arrived before the deadline. Not final: a later payment still grants the item. */
export const PURCHASE_EXPIRED = 'purchase:expired';
/** The purchase can never complete (for example, the sequencer rejected the intent). */
export const PURCHASE_FAILED = 'purchase:failed';
/** The player's entitlements changed (after a sync or a grant). */
export const ENTITLEMENTS_CHANGED = 'entitlements:changed';
/** The socket connected, disconnected or failed to connect. */
export const CONNECTION_CHANGED = 'connection:changed';
/** The sync and re-validation that run after every connect finished. */
export const SYNC_COMPLETED = 'sync:completed';

export interface EntitlementsChangedPayload {
  entitlements: Entitlements;
  previous: Entitlements;
}

export interface ConnectionChangedPayload {
  connected: boolean;
  /**
   * Why the connection ended or failed: a socket.io disconnect reason (for
   * example `transport close`) or a connect error message.
   */
  reason?: string;
}

export interface SyncCompletedPayload {
  /** Every purchase the plugin has seen in this session, after re-validation. */
  purchases: Purchase[];
  entitlements: Entitlements;
}

/** Event name → payload type, for every event the plugin emits. */
export interface CodePayEventMap {
  [PURCHASE_PENDING]: Purchase;
  [PURCHASE_PAID]: Purchase;
  [PURCHASE_GRANTED]: Purchase;
  [PURCHASE_CANCELLED]: Purchase;
  [PURCHASE_EXPIRED]: Purchase;
  [PURCHASE_FAILED]: Purchase;
  [ENTITLEMENTS_CHANGED]: EntitlementsChangedPayload;
  [CONNECTION_CHANGED]: ConnectionChangedPayload;
  [SYNC_COMPLETED]: SyncCompletedPayload;
}

/** The purchase event emitted when a purchase enters each state. */
export const PURCHASE_STATE_EVENTS = {
  pending: PURCHASE_PENDING,
  paid: PURCHASE_PAID,
  granted: PURCHASE_GRANTED,
  cancelled: PURCHASE_CANCELLED,
  expired: PURCHASE_EXPIRED,
  failed: PURCHASE_FAILED,
} as const;
