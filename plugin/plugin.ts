// The Phaser global plugin. Phaser's PluginManager creates it with
// `new CodePayPlugin(pluginManager)`, then calls `init(data)` and `start()`
// when the game boots, `stop()` if the game stops the plugin, and
// `destroy()` when the game is destroyed. Scenes reach it through the
// mapping, usually `this.codePay`.
//
// It has the shape of Phaser's `BasePlugin` (`pluginManager`, `game` and the
// four lifecycle methods) without extending it, so it imports nothing from
// Phaser at runtime and works with whichever Phaser (3.80 or later, or 4)
// the game loaded.
import type Phaser from 'phaser';
import { pino, type Logger } from 'pino';
import type { CatalogItem, Entitlements, Purchase } from '../protocol/index.js';
import { CodePayClient, type CodePayClientOptions, type SyncResult } from './client.js';
import type { Listener } from './emitter.js';
import { CodePayClientError } from './errors.js';
import { PURCHASE_STATE_EVENTS, SYNC_COMPLETED, type CodePayEventMap } from './events.js';
import { CanvasSheet } from './sheet/canvas-sheet.js';
import { ElementsSheet } from './sheet/elements-sheet.js';
import { mergeLabels, type SheetLabels } from './sheet/labels.js';
import type { PaymentSheet } from './sheet/sheet.js';

export type PaymentFlow = 'canvas' | 'elements';

/** The `data` of the plugin's entry in the game config. */
export interface CodePayPluginData extends CodePayClientOptions {
  /** `canvas` (default) draws the scan code in the game; `elements` mounts Code's official page element over it. */
  flow?: PaymentFlow;
  /** Overrides for any text on the canvas sheet (and the close button of the elements sheet). */
  labels?: Partial<SheetLabels>;
  /** CSS font family of the canvas sheet; `sans-serif` by default. */
  fontFamily?: string;
  /**
   * WebSocket URL of the sequencer's message stream (for the sandbox,
   * `ws://HOST:PORT/v1/ws`). Overrides a `streamUrl` from the server. With
   * neither, the sheet follows the purchase through the server alone.
   */
  streamUrl?: string;
  /** Milliseconds the sheet shows the granted status before it closes; 1200 by default. */
  grantedCloseDelayMs?: number;
  /** Element that contains the elements sheet; by default the fullscreen target or the canvas's parent. */
  elementsContainer?: HTMLElement;
  /** Locale passed to the elements page, for example `en`. */
  locale?: string;
}

const OPEN_SHEET_KEY = 'openSheet';

export class CodePayPlugin {
  readonly pluginManager: Phaser.Plugins.PluginManager;
  readonly game: Phaser.Game;

  private clientInstance: CodePayClient | undefined;
  private data: CodePayPluginData | undefined;
  private log: Logger = pino({ name: 'code-pay', level: 'info', browser: { asObject: true } });
  private labels: SheetLabels = mergeLabels(undefined);
  private currentSheet: PaymentSheet | undefined;
  private closeTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly sheetListeners: (() => void)[] = [];

  /** Called by Phaser's PluginManager when the game installs the plugin. */
  constructor(pluginManager: Phaser.Plugins.PluginManager) {
    this.pluginManager = pluginManager;
    this.game = pluginManager.game;
  }

  /** Called by the PluginManager once, before `start`, with the `data` of the plugin's config entry. */
  init(data?: CodePayPluginData): void {
    if (!data || typeof data !== 'object') {
      throw new CodePayClientError(
        'invalid_config',
        "Missing plugin data: add data: { serverUrl, auth } to the CodePay entry of the game config's plugins.global.",
      );
    }
    if (data.flow !== undefined && data.flow !== 'canvas' && data.flow !== 'elements') {
      throw new CodePayClientError('invalid_config', `Invalid flow ${JSON.stringify(data.flow)}: use 'canvas' or 'elements'.`);
    }

    this.data = data;
    if (data.logger) this.log = data.logger;
    this.labels = mergeLabels(data.labels);
    this.clientInstance = new CodePayClient({ ...data, logger: this.log });
    this.forwardSheetEvents(this.clientInstance);
  }

  /** Called by the PluginManager when the game boots (and again if the plugin was stopped): connects to the server. */
  start(): void {
    this.client.connect();
  }

  /** Called by the PluginManager when the plugin is stopped: closes the sheet and the connection. */
  stop(): void {
    this.closeSheet();
    this.client.socket.disconnect();
  }

  /** Called by the PluginManager when the game is destroyed. */
  destroy(): void {
    this.closeSheet();
    this.clientInstance?.destroy();
    this.clientInstance = undefined;
  }

  /** The socket client under the plugin, for advanced use. */
  get client(): CodePayClient {
    if (!this.clientInstance) {
      throw new CodePayClientError('invalid_config', 'The CodePay plugin is not initialised: install it in the game config with data.');
    }
    return this.clientInstance;
  }

  get connected(): boolean {
    return this.clientInstance?.connected ?? false;
  }

  /** Item id → number of grants the player has. */
  get entitlements(): Readonly<Entitlements> {
    return this.client.entitlements;
  }

  /** The payment sheet open now, if any. */
  get sheet(): PaymentSheet | undefined {
    return this.currentSheet;
  }

  owns(itemId: string): boolean {
    return this.client.owns(itemId);
  }

  catalog(refresh = false): Promise<CatalogItem[]> {
    return this.client.catalog(refresh);
  }

  sync(): Promise<SyncResult> {
    return this.client.sync();
  }

  revalidate(purchaseId: string): Promise<Purchase>;
  revalidate(): Promise<Purchase[]>;
  revalidate(purchaseId?: string): Promise<Purchase | Purchase[]> {
    return purchaseId === undefined ? this.client.revalidate() : this.client.revalidate(purchaseId);
  }

  on<K extends keyof CodePayEventMap>(event: K, listener: Listener<CodePayEventMap[K]>): this {
    this.client.on(event, listener);
    return this;
  }

  once<K extends keyof CodePayEventMap>(event: K, listener: Listener<CodePayEventMap[K]>): this {
    this.client.once(event, listener);
    return this;
  }

  off<K extends keyof CodePayEventMap>(event: K, listener: Listener<CodePayEventMap[K]>): this {
    this.client.off(event, listener);
    return this;
  }

  /**
   * Buys `itemId`: requests the purchase, opens the payment sheet and
   * resolves with the purchase once the server granted it. Rejects with a
   * `CodePayClientError`: a protocol code when the server refuses the
   * request (for example `already_owned`), `closed` when the player closes
   * the sheet first, or `failed` when the purchase fails. After `closed`
   * the purchase stays open on the server, so a payment that still arrives
   * is granted and emits `PURCHASE_GRANTED`.
   */
  async purchase(itemId: string): Promise<Purchase> {
    const purchase = await this.client.requestPurchase(itemId);
    if (purchase.state === 'granted') return purchase;
    if (purchase.state === 'failed') {
      throw new CodePayClientError('failed', `Purchase ${purchase.id} of ${itemId} failed and cannot complete.`, { purchase });
    }

    const item = (await this.client.catalog()).find((candidate) => candidate.id === itemId);
    const controller = new AbortController();
    this.openSheet(purchase, item, () => {
      const latest = this.clientInstance?.getPurchase(purchase.id) ?? purchase;
      controller.abort(
        new CodePayClientError('closed', `The payment sheet of purchase ${purchase.id} closed before the purchase was granted.`, {
          itemId,
          purchase: latest,
        }),
      );
    });

    return this.client.waitForGrant(purchase.id, controller.signal);
  }

  /**
   * Opens the sheet for `purchase`, replacing a sheet of another purchase.
   * The purchase id is stored, so a reload reopens the sheet for the same
   * intent.
   */
  private openSheet(purchase: Purchase, item: CatalogItem | undefined, onClosedByPlayer: () => void): void {
    if (this.currentSheet?.purchaseId === purchase.id) {
      this.sheetListeners.push(onClosedByPlayer);
      return;
    }
    this.closeSheet();

    const data = this.data!;
    const context = {
      purchase,
      item: item ?? { id: purchase.itemId, kind: purchase.kind, name: purchase.itemId, amount: purchase.amount, currency: purchase.currency },
      onClosedByPlayer: () => this.onSheetClosedByPlayer(purchase.id),
      onPaymentHint: () => this.onPaymentHint(purchase.id),
      onDeclineHint: () => this.onDeclineHint(purchase.id),
    };
    this.sheetListeners.push(onClosedByPlayer);
    this.storeOpenSheet(purchase.id);

    if (data.flow === 'elements') {
      const sheet = new ElementsSheet(this.game, context, {
        labels: this.labels,
        locale: data.locale,
        container: data.elementsContainer,
        log: this.log,
      });
      this.currentSheet = sheet;
      void sheet.open();
    } else {
      const sheet = new CanvasSheet(this.game, context, {
        labels: this.labels,
        streamUrl: data.streamUrl ?? this.client.streamUrl,
        fontFamily: data.fontFamily ?? 'sans-serif',
        log: this.log,
      });
      this.currentSheet = sheet;
      sheet.open();
    }
    this.log.info({ purchaseId: purchase.id, intentId: purchase.intentId, flow: data.flow ?? 'canvas' }, 'code-pay: payment sheet opened');
  }

  private onSheetClosedByPlayer(purchaseId: string): void {
    if (this.currentSheet?.purchaseId !== purchaseId) return;
    this.log.info({ purchaseId }, 'code-pay: payment sheet closed by the player');

    this.currentSheet = undefined;
    this.clearOpenSheet();
    for (const listener of this.sheetListeners.splice(0)) listener();
  }

  /** Re-validates after a browser-side report of a payment, which is never proof: the grant comes from the server. */
  private onPaymentHint(purchaseId: string): void {
    this.client.revalidate(purchaseId).catch((error: unknown) => {
      this.log.warn({ purchaseId, err: { message: error instanceof Error ? error.message : String(error) } }, 'code-pay: re-validation after a payment hint failed');
    });
  }

  /** Passes a decline reported by the stream on to the server, so it can mark the purchase `cancelled`. */
  private onDeclineHint(purchaseId: string): void {
    this.client.reportDeclined(purchaseId).catch((error: unknown) => {
      this.log.warn({ purchaseId, err: { message: error instanceof Error ? error.message : String(error) } }, 'code-pay: reporting a decline failed');
    });
  }

  /**
   * Closes the open sheet from code. A `purchase()` still waiting on it
   * rejects with `closed`, and its purchase stays open on the server.
   */
  private closeSheet(): void {
    clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
    const listeners = this.sheetListeners.splice(0);

    try {
      this.currentSheet?.close();
    } catch (error) {
      // The game may already have destroyed its scene manager or textures when the plugin is destroyed.
      this.log.warn({ err: { message: error instanceof Error ? error.message : String(error) } }, 'code-pay: closing the payment sheet failed');
    }
    this.currentSheet = undefined;

    for (const listener of listeners) listener();
  }

  private forwardSheetEvents(client: CodePayClient): void {
    for (const event of Object.values(PURCHASE_STATE_EVENTS)) {
      client.on(event, (purchase) => this.onPurchaseEvent(purchase));
    }
    client.on(SYNC_COMPLETED, () => void this.reopenStoredSheet());
  }

  private onPurchaseEvent(purchase: Purchase): void {
    const sheet = this.currentSheet;
    if (!sheet || sheet.purchaseId !== purchase.id) {
      if (purchase.state === 'granted' || purchase.state === 'failed') this.clearOpenSheet(purchase.id);
      return;
    }

    sheet.update(purchase);
    if (purchase.state === 'granted') {
      this.clearOpenSheet(purchase.id);
      this.sheetListeners.length = 0;
      clearTimeout(this.closeTimer);
      this.closeTimer = setTimeout(() => {
        if (this.currentSheet === sheet) this.closeSheet();
      }, this.data?.grantedCloseDelayMs ?? 1200);
    } else if (purchase.state === 'failed') {
      this.clearOpenSheet(purchase.id);
    }
  }

  /**
   * Reopens the sheet of the purchase that was on screen when the page was
   * closed, with the same purchase and intent, if the purchase is still
   * waiting for a payment. Runs after every sync that follows a connect.
   */
  private async reopenStoredSheet(): Promise<void> {
    const purchaseId = this.readOpenSheet();
    if (!purchaseId || this.currentSheet) return;

    let purchase = this.client.getPurchase(purchaseId);
    if (!purchase) {
      try {
        purchase = await this.client.revalidate(purchaseId);
      } catch (error) {
        this.log.warn({ purchaseId, err: { message: error instanceof Error ? error.message : String(error) } }, 'code-pay: could not reload the purchase of the last open sheet');
        if (error instanceof CodePayClientError && error.code === 'not_found') this.clearOpenSheet(purchaseId);
        return;
      }
    }

    if (purchase.state !== 'pending' && purchase.state !== 'paid') {
      this.clearOpenSheet(purchaseId);
      return;
    }
    if (this.currentSheet) return;

    const item = (await this.client.catalog().catch(() => [])).find((candidate) => candidate.id === purchase.itemId);
    this.log.info({ purchaseId, intentId: purchase.intentId }, 'code-pay: reopening the payment sheet of an open purchase');
    this.openSheet(purchase, item, () => undefined);
  }

  private storageKey(): string {
    return `${this.data?.storagePrefix ?? 'codePay:'}${OPEN_SHEET_KEY}`;
  }

  private storeOpenSheet(purchaseId: string): void {
    this.storage()?.setItem(this.storageKey(), purchaseId);
  }

  private readOpenSheet(): string | undefined {
    return this.storage()?.getItem(this.storageKey()) ?? undefined;
  }

  /** Forgets the stored sheet; with an id, only when it is that purchase's. */
  private clearOpenSheet(purchaseId?: string): void {
    const storage = this.storage();
    if (!storage) return;
    if (purchaseId !== undefined && storage.getItem(this.storageKey()) !== purchaseId) return;
    storage.removeItem(this.storageKey());
  }

  private storage(): Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | undefined {
    if (this.data?.storage) return this.data.storage;
    try {
      return typeof localStorage === 'undefined' ? undefined : localStorage;
    } catch {
      return undefined;
    }
  }
}
