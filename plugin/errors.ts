import type { ErrorCode, Purchase } from '../protocol/index.js';

/**
 * Codes the plugin adds to the protocol's error codes:
 * - `closed`: the player closed the payment sheet before the purchase was
 *   granted. The purchase stays open on the server, so a payment that still
 *   arrives is granted and reported through the `PURCHASE_GRANTED` event.
 * - `failed`: the purchase reached the final `failed` state.
 * - `timed_out`: the server did not acknowledge a request after every retry.
 * - `disconnected`: the plugin was destroyed or the connection was closed for
 *   good while a request was waiting.
 * - `invalid_config`: the plugin data or an argument is invalid.
 * - `invalid_response`: the server sent a payload that does not match the
 *   protocol.
 */
export type ClientErrorCode =
  | 'closed'
  | 'failed'
  | 'timed_out'
  | 'disconnected'
  | 'invalid_config'
  | 'invalid_response';

export type CodePayErrorCode = ErrorCode | ClientErrorCode;

export interface CodePayClientErrorDetails {
  itemId?: string;
  purchaseId?: string;
  /** The latest known state of the purchase involved, when there is one. */
  purchase?: Purchase;
}

/** The one error class the plugin rejects and throws with. */
export class CodePayClientError extends Error {
  readonly code: CodePayErrorCode;
  readonly itemId?: string;
  readonly purchaseId?: string;
  readonly purchase?: Purchase;

  constructor(code: CodePayErrorCode, message: string, details: CodePayClientErrorDetails = {}) {
    super(message);
    this.name = 'CodePayClientError';
    this.code = code;
    this.itemId = details.itemId;
    this.purchaseId = details.purchaseId ?? details.purchase?.id;
    this.purchase = details.purchase;
  }
}

export function isCodePayClientError(value: unknown): value is CodePayClientError {
  return value instanceof CodePayClientError;
}
