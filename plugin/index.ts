// Public entry of `phaser-code-pay/plugin`.
export { CodePayPlugin, type CodePayPluginData, type PaymentFlow } from './plugin.js';
export { CodePayClient, type AuthOption, type CodePayClientOptions, type SyncResult } from './client.js';
export { CodePayClientError, isCodePayClientError, type ClientErrorCode, type CodePayErrorCode } from './errors.js';
export { MemoryStorage, type AttemptStorage } from './attempts.js';
export { DEFAULT_LABELS, type SheetLabels, type SheetStatus } from './sheet/labels.js';
export type { PaymentSheet } from './sheet/sheet.js';
export * from './events.js';
export * as CodePayEvents from './events.js';
export type { CatalogItem, Entitlements, ErrorCode, Purchase, PurchaseKind, PurchaseState } from '../protocol/index.js';
