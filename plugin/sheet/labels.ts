/** Status of the payment sheet, set from the purchase state or from a hint of the sequencer's stream. */
export type SheetStatus = 'loading' | 'waiting' | 'scanned' | 'paid' | 'granted' | 'declined' | 'expired' | 'failed' | 'error';

/** Every text on the payment sheet, so a game can translate it. */
export interface SheetLabels {
  /** Line above the item name. */
  title: string;
  /** Shown while the scan code is being prepared. */
  loading: string;
  waiting: string;
  scanned: string;
  paid: string;
  granted: string;
  declined: string;
  expired: string;
  failed: string;
  /** Shown when the scan code could not be drawn. */
  error: string;
  /** Button that closes the sheet while the purchase is open. */
  cancel: string;
  /** Button that closes the sheet after the purchase ended. */
  close: string;
  /** Formats an amount in the currency's major unit, for example 0.25 and `usd` → `$0.25`. */
  formatPrice: (amount: number, currency: string) => string;
}

export const DEFAULT_LABELS: SheetLabels = {
  title: 'Pay with Code',
  loading: 'Preparing the code…',
  waiting: 'Scan with the Code app to pay',
  scanned: 'Scanned: confirm in the Code app',
  paid: 'Paid: delivering your item…',
  granted: 'Done! Enjoy your item',
  declined: 'Payment declined in the wallet',
  expired: 'This payment request expired',
  failed: 'This purchase failed',
  error: 'Could not show the code; close and try again',
  cancel: 'Cancel',
  close: 'Close',
  formatPrice: (amount, currency) => {
    try {
      return new Intl.NumberFormat(undefined, { style: 'currency', currency: currency.toUpperCase() }).format(amount);
    } catch {
      // Intl rejects codes it does not know (for example `kin`).
      return `${amount} ${currency.toUpperCase()}`;
    }
  },
};

export function mergeLabels(overrides: Partial<SheetLabels> | undefined): SheetLabels {
  return { ...DEFAULT_LABELS, ...overrides };
}

/** Statuses after which the sheet offers `close` instead of `cancel`. */
export function isEndStatus(status: SheetStatus): boolean {
  return status === 'granted' || status === 'failed' || status === 'error';
}
