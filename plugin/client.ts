// The non-visual half of the plugin: the socket.io connection to the kit's
// `/code-pay` namespace, requests with acknowledgement timeouts and retries,
// consumable attempt ids, the local copy of purchases and entitlements, and
// the events. It has no Phaser or DOM dependency, so Node tests drive it
// against a real socket.io server.
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { pino, type Logger } from 'pino';
import {
  CODE_PAY_NAMESPACE,
  ITEM_ID_PATTERN,
  isFinalState,
  isOpenState,
  type CatalogItem,
  type ClientToServerEvents,
  type Entitlements,
  type Purchase,
  type RevalidateRequest,
  type ServerToClientEvents,
} from '../protocol/index.js';
import { AttemptStore, MemoryStorage, type AttemptStorage } from './attempts.js';
import { TypedEmitter } from './emitter.js';
import { CodePayClientError } from './errors.js';
import {
  CONNECTION_CHANGED,
  ENTITLEMENTS_CHANGED,
  PURCHASE_FAILED,
  PURCHASE_GRANTED,
  PURCHASE_STATE_EVENTS,
  SYNC_COMPLETED,
  type CodePayEventMap,
} from './events.js';
import {
  catalogAckSchema,
  describeIssues,
  purchaseAckSchema,
  purchaseSchema,
  syncAckSchema,
  toCatalogItem,
  toEntitlements,
  toErrorBody,
  toPurchase,
} from './schema.js';

/** The handshake token, or a function that returns it (called on every connect and reconnect). */
export type AuthOption = string | (() => string | Promise<string>);

export interface CodePayClientOptions {
  /**
   * Origin of the game server that runs the kit, for example
   * `http://127.0.0.1:8080`. Empty or omitted means the page's own origin.
   */
  serverUrl?: string;
  auth: AuthOption;
  /** Storage for consumable attempt ids: `localStorage` by default, or memory when the page has none. */
  storage?: AttemptStorage;
  /** Prefix of every storage key the plugin writes; `codePay:` by default. */
  storagePrefix?: string;
  /** Milliseconds to wait for each acknowledgement before sending the request again; 10000 by default. */
  ackTimeoutMs?: number;
  /** How many times a timed-out request is sent again before it fails with `timed_out`; 4 by default. */
  maxRetries?: number;
  /** Milliseconds a request waits for the socket to (re)connect before it fails with `disconnected`; 30000 by default. */
  offlineTimeoutMs?: number;
  /** Extra socket.io client options, for example `{ path: '/game/socket.io' }` or `{ transports: ['websocket'] }`. */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
  logger?: Logger;
}

export type CodePaySocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface SyncResult {
  purchases: Purchase[];
  entitlements: Entitlements;
}

/** Events the client emits besides the public ones, for the plugin that wraps it. */
export type CodePayClientEventMap = CodePayEventMap;

const DEFAULT_ACK_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_RETRIES = 4;
const DEFAULT_OFFLINE_TIMEOUT_MS = 30_000;

/** Marks a request abandoned because the socket dropped while it waited; it is sent again after the reconnect. */
class DisconnectedWhileWaiting extends Error {}

export class CodePayClient extends TypedEmitter<CodePayClientEventMap> {
  readonly socket: CodePaySocket;
  /** Stream endpoint of the sequencer, when the kit publishes one in its catalog acknowledgement. */
  streamUrl: string | undefined;

  private readonly attempts: AttemptStore;
  private readonly log: Logger;
  private readonly ackTimeoutMs: number;
  private readonly maxRetries: number;
  private readonly offlineTimeoutMs: number;
  private readonly purchaseCache = new Map<string, Purchase>();
  private entitlementCounts: Entitlements = {};
  private catalogItems: CatalogItem[] | undefined;
  private catalogRequest: Promise<CatalogItem[]> | undefined;
  private destroyed = false;
  private authFailure: CodePayClientError | undefined;
  private correctionSync: Promise<void> | undefined;
  /** Callbacks that reject pending waits when the client is destroyed. */
  private readonly destroyListeners = new Set<() => void>();

  constructor(options: CodePayClientOptions) {
    super();
    validateOptions(options);

    this.log = options.logger ?? pino({ name: 'code-pay', level: 'info', browser: { asObject: true } });
    this.ackTimeoutMs = options.ackTimeoutMs ?? DEFAULT_ACK_TIMEOUT_MS;
    this.maxRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
    this.offlineTimeoutMs = options.offlineTimeoutMs ?? DEFAULT_OFFLINE_TIMEOUT_MS;

    const storage = options.storage ?? defaultStorage();
    this.attempts = new AttemptStore(storage, options.storagePrefix ?? 'codePay:');

    const auth = options.auth;
    const serverUrl = (options.serverUrl ?? '').replace(/\/+$/, '');
    this.socket = io(serverUrl + CODE_PAY_NAMESPACE, {
      ...options.socketOptions,
      autoConnect: false,
      auth: (send) => {
        resolveToken(auth).then(
          (token) => send({ token }),
          (error: unknown) => {
            this.log.error({ err: errorSummary(error) }, 'code-pay: the auth function failed, connecting without a token');
            send({ token: '' });
          },
        );
      },
    });

    this.socket.on('connect', () => this.onConnect());
    this.socket.on('disconnect', (reason) => this.onDisconnect(reason));
    this.socket.on('connect_error', (error) => this.onConnectError(error));
    this.socket.on('purchase:updated', (payload) => this.onPurchaseUpdated(payload));
  }

  /** Opens the socket. The client syncs and re-validates open purchases on this and every later connect. */
  connect(): void {
    if (this.destroyed) return;
    this.socket.connect();
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  /** Item id → number of grants, as last reported by the server or by a grant. */
  get entitlements(): Readonly<Entitlements> {
    return this.entitlementCounts;
  }

  /** Every purchase the client has seen in this session. */
  get purchases(): Purchase[] {
    return [...this.purchaseCache.values()];
  }

  getPurchase(purchaseId: string): Purchase | undefined {
    return this.purchaseCache.get(purchaseId);
  }

  owns(itemId: string): boolean {
    return (this.entitlementCounts[itemId] ?? 0) > 0;
  }

  /** Returns the catalog, fetched once and cached; `refresh` fetches it again. */
  async catalog(refresh = false): Promise<CatalogItem[]> {
    if (this.catalogItems && !refresh) return this.catalogItems;
    if (this.catalogRequest) return this.catalogRequest;

    this.catalogRequest = this.fetchCatalog().finally(() => {
      this.catalogRequest = undefined;
    });
    return this.catalogRequest;
  }

  /** Fetches the player's purchases and entitlements and replaces the local copy of the entitlements. */
  async sync(): Promise<SyncResult> {
    const raw = await this.withRetries('sync', {}, (socket) => socket.timeout(this.ackTimeoutMs).emitWithAck('sync'));
    const parsed = syncAckSchema.safeParse(raw);
    if (!parsed.success) throw this.invalidResponse('sync', describeIssues(parsed.error));
    if (!parsed.data.ok) throw this.serverError('sync', toErrorBody(parsed.data.error), {});

    const purchases = parsed.data.purchases.map(toPurchase);
    for (const purchase of purchases) {
      this.applyPurchase(purchase, { fromSync: true });
    }
    this.replaceEntitlements(toEntitlements(parsed.data.entitlements));

    return { purchases, entitlements: this.entitlementCounts };
  }

  /**
   * Asks the server to check a purchase with the sequencer now. Without an
   * id, re-validates every open purchase the client has seen and returns
   * those the server acknowledged. A failure of one is logged, and the
   * others still run.
   */
  async revalidate(purchaseId: string): Promise<Purchase>;
  async revalidate(): Promise<Purchase[]>;
  async revalidate(purchaseId?: string): Promise<Purchase | Purchase[]> {
    if (purchaseId !== undefined) return this.revalidateOne(purchaseId, undefined);

    const open = this.purchases.filter((purchase) => isOpenState(purchase.state) || purchase.state === 'paid');
    const results: Purchase[] = [];
    for (const purchase of open) {
      try {
        results.push(await this.revalidateOne(purchase.id, undefined));
      } catch (error) {
        this.log.warn({ purchaseId: purchase.id, intentId: purchase.intentId, err: errorSummary(error) }, 'code-pay: re-validation failed');
      }
    }
    return results;
  }

  /**
   * Re-validates a purchase with the hint that the sequencer's stream
   * reported a decline, so the server can move it to `cancelled` (a later
   * payment still grants it).
   */
  reportDeclined(purchaseId: string): Promise<Purchase> {
    return this.revalidateOne(purchaseId, 'cancelled');
  }

  /**
   * Sends the purchase request for `itemId` and returns the purchase the
   * server created or found. For a consumable, the attempt id is stored
   * before the request is sent and reused by every retry, so a lost
   * acknowledgement, a crash or a reload never starts a second charge.
   */
  async requestPurchase(itemId: string): Promise<Purchase> {
    if (typeof itemId !== 'string' || !ITEM_ID_PATTERN.test(itemId)) {
      const error = new CodePayClientError(
        'invalid_request',
        `Invalid item id ${JSON.stringify(itemId)}: use 1 to 64 letters, digits, ".", "-" or "_".`,
      );
      this.log.warn({ code: error.code }, error.message);
      throw error;
    }

    const item = (await this.catalog()).find((candidate) => candidate.id === itemId);
    if (!item) {
      const error = new CodePayClientError('unknown_item', `Item ${itemId} is not in the catalog; check the id against catalog().`, {
        itemId,
      });
      this.log.warn({ itemId, code: error.code }, error.message);
      throw error;
    }

    const attemptId = item.kind === 'consumable' ? this.attempts.getOrCreate(itemId) : undefined;
    const request = attemptId ? { itemId, attemptId } : { itemId };

    const raw = await this.withRetries('purchase', { itemId }, (socket) =>
      socket.timeout(this.ackTimeoutMs).emitWithAck('purchase', request),
    );
    const parsed = purchaseAckSchema.safeParse(raw);
    if (!parsed.success) throw this.invalidResponse('purchase', describeIssues(parsed.error));
    if (!parsed.data.ok) throw this.serverError('purchase', toErrorBody(parsed.data.error), { itemId });

    const purchase = toPurchase(parsed.data.purchase);
    this.log.info({ purchaseId: purchase.id, intentId: purchase.intentId, itemId, state: purchase.state }, 'code-pay: purchase requested');
    this.applyPurchase(purchase);
    return this.purchaseCache.get(purchase.id) ?? purchase;
  }

  /**
   * Resolves with the purchase once it is granted and rejects with `failed`
   * when it fails. Aborting `signal` rejects with the signal's reason (the
   * plugin passes a `closed` error), but leaves the purchase open on the
   * server.
   */
  waitForGrant(purchaseId: string, signal?: AbortSignal): Promise<Purchase> {
    return new Promise((resolve, reject) => {
      const settle = (purchase: Purchase) => {
        if (purchase.id !== purchaseId) return;

        if (purchase.state === 'granted') {
          cleanup();
          resolve(purchase);
        } else if (purchase.state === 'failed') {
          cleanup();
          reject(
            new CodePayClientError('failed', `Purchase ${purchase.id} of ${purchase.itemId} failed and cannot complete.`, { purchase }),
          );
        }
      };
      const onAbort = () => {
        cleanup();
        reject(signal?.reason ?? new CodePayClientError('closed', `Stopped waiting for purchase ${purchaseId}.`, { purchaseId }));
      };
      const onDestroy = () => {
        cleanup();
        reject(new CodePayClientError('disconnected', `The plugin was destroyed while purchase ${purchaseId} was open.`, { purchaseId }));
      };
      const cleanup = () => {
        this.off(PURCHASE_GRANTED, settle);
        this.off(PURCHASE_FAILED, settle);
        this.destroyListeners.delete(onDestroy);
        signal?.removeEventListener('abort', onAbort);
      };

      this.on(PURCHASE_GRANTED, settle);
      this.on(PURCHASE_FAILED, settle);
      this.destroyListeners.add(onDestroy);
      signal?.addEventListener('abort', onAbort);

      if (signal?.aborted) {
        onAbort();
        return;
      }
      const current = this.purchaseCache.get(purchaseId);
      if (current) settle(current);
    });
  }

  /** Requests the purchase and waits for its grant, without any payment sheet. */
  async purchase(itemId: string, signal?: AbortSignal): Promise<Purchase> {
    const purchase = await this.requestPurchase(itemId);
    return this.waitForGrant(purchase.id, signal);
  }

  /** Closes the socket for good and rejects every request and wait still open. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;

    this.socket.removeAllListeners();
    this.socket.disconnect();
    for (const listener of [...this.destroyListeners]) listener();
    this.destroyListeners.clear();
    this.removeAllListeners();
  }

  private async fetchCatalog(): Promise<CatalogItem[]> {
    const raw = await this.withRetries('catalog', {}, (socket) => socket.timeout(this.ackTimeoutMs).emitWithAck('catalog'));
    const parsed = catalogAckSchema.safeParse(raw);
    if (!parsed.success) throw this.invalidResponse('catalog', describeIssues(parsed.error));
    if (!parsed.data.ok) throw this.serverError('catalog', toErrorBody(parsed.data.error), {});

    this.catalogItems = parsed.data.items.map(toCatalogItem);
    this.streamUrl = parsed.data.streamUrl;
    return this.catalogItems;
  }

  private async revalidateOne(purchaseId: string, hint: RevalidateRequest['hint']): Promise<Purchase> {
    if (typeof purchaseId !== 'string' || purchaseId.length === 0) {
      const error = new CodePayClientError('invalid_request', `Invalid purchase id ${JSON.stringify(purchaseId)}: pass a purchase's id.`);
      this.log.warn({ code: error.code }, error.message);
      throw error;
    }

    const request: RevalidateRequest = hint ? { purchaseId, hint } : { purchaseId };
    const raw = await this.withRetries('revalidate', { purchaseId }, (socket) =>
      socket.timeout(this.ackTimeoutMs).emitWithAck('revalidate', request),
    );
    const parsed = purchaseAckSchema.safeParse(raw);
    if (!parsed.success) throw this.invalidResponse('revalidate', describeIssues(parsed.error));
    if (!parsed.data.ok) throw this.serverError('revalidate', toErrorBody(parsed.data.error), { purchaseId });

    const purchase = toPurchase(parsed.data.purchase);
    this.applyPurchase(purchase);
    return this.purchaseCache.get(purchase.id) ?? purchase;
  }

  /**
   * Sends a request until it is acknowledged. After a timeout the same
   * request goes out again, up to `maxRetries` times. After a disconnect it
   * goes out again once the socket reconnects, without counting as a retry.
   * Every request of the protocol is idempotent, so a duplicate is harmless.
   */
  private async withRetries<T>(
    event: string,
    ids: { itemId?: string; purchaseId?: string },
    send: (socket: CodePaySocket) => Promise<T>,
  ): Promise<T> {
    let timeouts = 0;

    for (;;) {
      await this.waitForConnection(event, ids);

      try {
        return await this.raceDisconnect(send(this.socket));
      } catch (error) {
        if (this.destroyed) {
          throw new CodePayClientError('disconnected', `The plugin was destroyed while ${event} was waiting.`, ids);
        }
        if (error instanceof DisconnectedWhileWaiting) {
          this.log.info({ event, ...ids }, 'code-pay: connection lost while waiting for an acknowledgement, sending again after the reconnect');
          continue;
        }

        timeouts += 1;
        if (timeouts > this.maxRetries) {
          const failure = new CodePayClientError(
            'timed_out',
            `The server did not acknowledge ${event} after ${timeouts} attempts of ${this.ackTimeoutMs} ms each; check that the kit is running.`,
            ids,
          );
          this.log.error({ event, ...ids, code: failure.code }, failure.message);
          throw failure;
        }
        this.log.warn({ event, ...ids, attempt: timeouts }, 'code-pay: acknowledgement timed out, sending the request again');
      }
    }
  }

  private raceDisconnect<T>(pending: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onDisconnect = () => reject(new DisconnectedWhileWaiting());
      this.socket.once('disconnect', onDisconnect);
      pending.then(
        (value) => {
          this.socket.off('disconnect', onDisconnect);
          resolve(value);
        },
        (error: unknown) => {
          this.socket.off('disconnect', onDisconnect);
          reject(error);
        },
      );
    });
  }

  private waitForConnection(event: string, ids: { itemId?: string; purchaseId?: string }): Promise<void> {
    if (this.destroyed) {
      return Promise.reject(new CodePayClientError('disconnected', `The plugin was destroyed before ${event} was sent.`, ids));
    }
    if (this.authFailure) return Promise.reject(this.authFailure);
    if (this.socket.connected) return Promise.resolve();

    return new Promise((resolve, reject) => {
      const finish = (error?: CodePayClientError) => {
        clearTimeout(timer);
        this.socket.off('connect', onConnect);
        this.socket.off('connect_error', onConnectError);
        this.destroyListeners.delete(onDestroy);
        if (error) reject(error);
        else resolve();
      };
      const onConnect = () => finish();
      const onConnectError = () => {
        if (this.authFailure) finish(this.authFailure);
      };
      const onDestroy = () => finish(new CodePayClientError('disconnected', `The plugin was destroyed before ${event} was sent.`, ids));
      const timer = setTimeout(() => {
        finish(
          new CodePayClientError(
            'disconnected',
            `Could not connect to the server within ${this.offlineTimeoutMs} ms to send ${event}; check the network and serverUrl.`,
            ids,
          ),
        );
      }, this.offlineTimeoutMs);

      this.socket.on('connect', onConnect);
      this.socket.on('connect_error', onConnectError);
      this.destroyListeners.add(onDestroy);
    });
  }

  private onConnect(): void {
    this.authFailure = undefined;
    this.log.info('code-pay: connected');
    this.emit(CONNECTION_CHANGED, { connected: true });
    void this.refresh();
  }

  /** Syncs and re-validates every open purchase; runs on every connect. */
  private async refresh(): Promise<void> {
    try {
      const result = await this.sync();
      await this.revalidate();
      this.emit(SYNC_COMPLETED, { purchases: this.purchases, entitlements: result.entitlements });
    } catch (error) {
      this.log.warn({ err: errorSummary(error) }, 'code-pay: sync after connect failed; it runs again on the next connect');
    }
  }

  private onDisconnect(reason: string): void {
    this.log.info({ reason }, 'code-pay: disconnected');
    this.emit(CONNECTION_CHANGED, { connected: false, reason });
  }

  private onConnectError(error: Error): void {
    // socket.io stops reconnecting after the server's middleware rejects the
    // handshake (`socket.active` is false then), so waiting requests fail.
    if (!this.socket.active) {
      this.authFailure = new CodePayClientError(
        'unauthenticated',
        `The server rejected the connection: ${error.message}. Check the auth token the plugin sends.`,
      );
      this.log.error({ code: 'unauthenticated', reason: error.message }, 'code-pay: connection rejected');
    } else {
      this.log.warn({ reason: error.message }, 'code-pay: connection failed, retrying');
    }
    this.emit(CONNECTION_CHANGED, { connected: false, reason: error.message });
  }

  private onPurchaseUpdated(payload: unknown): void {
    const parsed = purchaseSchema.safeParse(payload);
    if (!parsed.success) {
      this.log.warn({ code: 'invalid_response', issues: parsed.error.issues.length }, 'code-pay: ignored an invalid purchase:updated payload');
      return;
    }
    this.applyPurchase(toPurchase(parsed.data));
  }

  /**
   * Stores a purchase and emits the event of its state when the state
   * changed. An update older than the stored one, or one for a purchase
   * already in a final state, is ignored, because a push and an
   * acknowledgement can arrive in either order.
   */
  private applyPurchase(purchase: Purchase, options: { fromSync?: boolean } = {}): void {
    const previous = this.purchaseCache.get(purchase.id);
    if (previous && (isFinalState(previous.state) || purchase.updatedAt < previous.updatedAt)) return;

    this.purchaseCache.set(purchase.id, purchase);
    if (previous?.state === purchase.state) return;

    this.log.info(
      { purchaseId: purchase.id, intentId: purchase.intentId, itemId: purchase.itemId, state: purchase.state, previous: previous?.state },
      'code-pay: purchase state changed',
    );

    if (isFinalState(purchase.state) && purchase.attemptId) {
      this.attempts.clear(purchase.itemId, purchase.attemptId);
    }
    if (purchase.state === 'granted' && !options.fromSync) {
      this.addGrant(purchase);
    }

    this.emit(PURCHASE_STATE_EVENTS[purchase.state], purchase);
  }

  /**
   * Counts a grant at once, so `owns()` is true when `purchase()` resolves.
   * A consumable's count could be counted twice when a sync and a late push
   * cross, so a sync follows to take the server's count.
   */
  private addGrant(purchase: Purchase): void {
    const next = { ...this.entitlementCounts };
    if (purchase.kind === 'consumable') {
      next[purchase.itemId] = (next[purchase.itemId] ?? 0) + 1;
      this.scheduleCorrectionSync();
    } else {
      next[purchase.itemId] = 1;
    }
    this.replaceEntitlements(next);
  }

  private scheduleCorrectionSync(): void {
    if (this.correctionSync) return;

    this.correctionSync = Promise.resolve()
      .then(() => this.sync())
      .then(
        () => undefined,
        (error: unknown) => {
          this.log.warn({ err: errorSummary(error) }, 'code-pay: sync after a grant failed; it runs again on the next connect');
        },
      )
      .finally(() => {
        this.correctionSync = undefined;
      });
  }

  private replaceEntitlements(next: Entitlements): void {
    const previous = this.entitlementCounts;
    if (sameEntitlements(previous, next)) return;

    this.entitlementCounts = next;
    this.emit(ENTITLEMENTS_CHANGED, { entitlements: next, previous });
  }

  private invalidResponse(event: string, detail: string): CodePayClientError {
    const error = new CodePayClientError('invalid_response', `The server's ${event} acknowledgement does not match the protocol: ${detail}`);
    this.log.error({ event, code: error.code }, `code-pay: invalid ${event} acknowledgement`);
    return error;
  }

  private serverError(
    event: string,
    body: { code: CodePayClientError['code']; message: string },
    ids: { itemId?: string; purchaseId?: string },
  ): CodePayClientError {
    this.log.warn({ event, ...ids, code: body.code }, `code-pay: ${event} rejected: ${body.message}`);
    return new CodePayClientError(body.code, body.message, ids);
  }
}

function validateOptions(options: CodePayClientOptions): void {
  if (typeof options !== 'object' || options === null) {
    throw new CodePayClientError('invalid_config', 'Missing plugin options: pass { serverUrl, auth }.');
  }
  if (options.serverUrl !== undefined && typeof options.serverUrl !== 'string') {
    throw new CodePayClientError('invalid_config', `Invalid serverUrl ${String(options.serverUrl)}: pass the game server's origin as a string.`);
  }
  if (typeof options.auth !== 'string' && typeof options.auth !== 'function') {
    throw new CodePayClientError('invalid_config', 'Missing auth: pass the handshake token or a function that returns it.');
  }
  for (const name of ['ackTimeoutMs', 'maxRetries', 'offlineTimeoutMs'] as const) {
    const value = options[name];
    if (value !== undefined && (!Number.isFinite(value) || value < 0)) {
      throw new CodePayClientError('invalid_config', `Invalid ${name} ${String(value)}: pass a non-negative number.`);
    }
  }
}

async function resolveToken(auth: AuthOption): Promise<string> {
  const token = typeof auth === 'function' ? await auth() : auth;
  if (typeof token !== 'string') throw new TypeError(`auth returned ${typeof token}, expected a string`);
  return token;
}

function defaultStorage(): AttemptStorage {
  try {
    if (typeof localStorage !== 'undefined') return localStorage;
  } catch {
    // Reading localStorage throws when the browser blocks storage for the page.
  }
  return new MemoryStorage();
}

function sameEntitlements(a: Entitlements, b: Entitlements): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    if ((a[key] ?? 0) !== (b[key] ?? 0)) return false;
  }
  return true;
}

/** Returns the error's name and message but never its payload, so a log line cannot carry a token or client secret. */
function errorSummary(error: unknown): { name: string; message: string } {
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: typeof error, message: String(error) };
}
