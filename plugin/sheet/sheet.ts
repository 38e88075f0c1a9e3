import type { CatalogItem, Purchase, PurchaseState } from '../../protocol/index.js';
import type { SheetStatus } from './labels.js';

/** A payment sheet as the plugin drives it, whichever flow draws it. */
export interface PaymentSheet {
  readonly purchaseId: string;
  readonly status: SheetStatus;
  /** Shows the purchase's latest state. */
  update(purchase: Purchase): void;
  /** Closes the sheet from code; does not call `onClosedByPlayer`. */
  close(): void;
}

export interface SheetContext {
  purchase: Purchase;
  item: CatalogItem;
  /** Called once when the player closes the sheet (cancel or close button, or the element's `cancel`). */
  onClosedByPlayer: () => void;
  /** Called when the sequencer or the elements iframe reports a payment: a hint to re-validate, never a grant. */
  onPaymentHint: () => void;
  /** Called when the sequencer's stream reports that the player declined in the wallet. */
  onDeclineHint: () => void;
}

/** Maps a purchase state to the sheet status that shows it. */
export function statusForState(state: PurchaseState): SheetStatus {
  switch (state) {
    case 'pending':
      return 'waiting';
    case 'paid':
      return 'paid';
    case 'granted':
      return 'granted';
    case 'cancelled':
      return 'declined';
    case 'expired':
      return 'expired';
    case 'failed':
      return 'failed';
  }
}
