// The contract shared by the plugin (browser) and the backend kit (Node):
// purchase shapes, states, error codes and the typed socket.io event maps of
// the `/code-pay` namespace. Types and pure functions only, so both sides can
// import this file without pulling in Node or browser APIs.

/** The socket.io namespace the kit registers and the plugin connects to. */
export const CODE_PAY_NAMESPACE = '/code-pay';

/**
 * How many times an item can be bought.
 * - `unique`: once across all players (a one-of-a-kind collectible).
 * - `permanent`: once per player (an unlock, a skin).
 * - `consumable`: once per purchase attempt (gems, lives).
 */
export type PurchaseKind = 'unique' | 'permanent' | 'consumable';

export const PURCHASE_KINDS: readonly PurchaseKind[] = ['unique', 'permanent', 'consumable'];

/**
 * Purchase states. `pending` → `paid` → `granted` is the normal path.
 * `cancelled` and `expired` are not final: a late payment still moves the
 * purchase to `paid`. `granted` and `failed` are final.
 */
export type PurchaseState = 'pending' | 'paid' | 'granted' | 'cancelled' | 'expired' | 'failed';

export const PURCHASE_STATES: readonly PurchaseState[] = [
  'pending',
  'paid',
  'granted',
  'cancelled',
  'expired',
  'failed',
];

/** States in which a payment may still arrive, so the kit keeps checking. */
export const OPEN_STATES: readonly PurchaseState[] = ['pending', 'cancelled', 'expired'];

/** A purchase as the server stores it and sends it to the owning player. */
export interface Purchase {
  /** Stable id of the purchase, chosen by the kit. */
  id: string;
  itemId: string;
  kind: PurchaseKind;
  state: PurchaseState;
  /** The Code intent id (base58 rendezvous public key). */
  intentId: string;
  /** The Code client secret (base58 nonce); only ever sent to the owning player. */
  clientSecret: string;
  /** Amount in the currency's major unit, pinned at creation (for example 0.25). */
  amount: number;
  /** Lower-case currency code, pinned at creation (for example `usd`). */
  currency: string;
  /** Base58 address of the wallet that receives the payment, pinned at creation. */
  destination: string;
  /** Consumable attempt id, when the item is a consumable. */
  attemptId?: string;
  /** Milliseconds since the Unix epoch. */
  createdAt: number;
  /** Milliseconds since the Unix epoch. */
  updatedAt: number;
}

/** A catalog item as the server publishes it to players. */
export interface CatalogItem {
  id: string;
  kind: PurchaseKind;
  name: string;
  description?: string;
  amount: number;
  currency: string;
}

/** A player's items: item id → number of grants (1 for unique and permanent items). */
export type Entitlements = Record<string, number>;

/** Stable error codes carried by acknowledgements and by errors on both sides. */
export type ErrorCode =
  | 'invalid_request'
  | 'unauthenticated'
  | 'unknown_item'
  | 'already_owned'
  | 'reserved'
  | 'sold_out'
  | 'rate_limited'
  | 'sequencer_unavailable'
  | 'sequencer_rejected'
  | 'not_found'
  | 'internal';

export const ERROR_CODES: readonly ErrorCode[] = [
  'invalid_request',
  'unauthenticated',
  'unknown_item',
  'already_owned',
  'reserved',
  'sold_out',
  'rate_limited',
  'sequencer_unavailable',
  'sequencer_rejected',
  'not_found',
  'internal',
];

export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export type Ack<T> = ({ ok: true } & T) | { ok: false; error: ErrorBody };

export type CatalogAck = Ack<{
  items: CatalogItem[];
  /**
   * Optional WebSocket URL of the sequencer's message stream
   * (`Messaging.OpenMessageStream`), for example `ws://127.0.0.1:8081/v1/ws`
   * for a sandbox. The plugin's canvas sheet follows the intent on it to show
   * "scanned" and "declined"; without it the sheet follows the server alone.
   */
  streamUrl?: string;
}>;
export type PurchaseAck = Ack<{ purchase: Purchase }>;
export type SyncAck = Ack<{ purchases: Purchase[]; entitlements: Entitlements }>;

export interface PurchaseRequest {
  itemId: string;
  /** Required for consumables: a client-generated id, reused on every retry of one attempt. */
  attemptId?: string;
}

export interface RevalidateRequest {
  purchaseId: string;
  /**
   * `cancelled` when the sequencer's message stream reported to the browser that
   * the player declined in the wallet; the sequencer's status never reports
   * a decline, so only the browser knows.
   */
  hint?: 'cancelled';
}

/** Events the plugin sends; each takes an acknowledgement callback. */
export interface ClientToServerEvents {
  catalog: (ack: (response: CatalogAck) => void) => void;
  purchase: (request: PurchaseRequest, ack: (response: PurchaseAck) => void) => void;
  revalidate: (request: RevalidateRequest, ack: (response: PurchaseAck) => void) => void;
  sync: (ack: (response: SyncAck) => void) => void;
}

/** Events the server pushes to every socket of the owning player. */
export interface ServerToClientEvents {
  'purchase:updated': (purchase: Purchase) => void;
}

/** The handshake the plugin sends: `io(url + CODE_PAY_NAMESPACE, { auth: { token } })`. */
export interface HandshakeAuth {
  token: string;
}

/** Attempt ids: 8 to 64 characters of letters, digits, `-` and `_` (a UUID fits). */
export const ATTEMPT_ID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

/** Item ids: 1 to 64 characters of letters, digits, `.`, `-` and `_`. */
export const ITEM_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export function isFinalState(state: PurchaseState): boolean {
  return state === 'granted' || state === 'failed';
}

export function isOpenState(state: PurchaseState): boolean {
  return OPEN_STATES.includes(state);
}
