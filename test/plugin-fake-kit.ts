// An in-memory stand-in for the backend kit's `/code-pay` namespace, typed by
// the shared protocol, for the plugin's own tests. It keeps purchases in a
// map, follows the protocol's idempotency rules (one purchase per player and
// item, or per player, item and attempt id for consumables) and lets a test
// pay, decline or drop acknowledgements.
import { randomBytes } from 'node:crypto';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import bs58 from 'bs58';
import { Server, type Socket } from 'socket.io';
import { deriveRendezvous } from '../plugin/sheet/rendezvous.js';
import {
  CODE_PAY_NAMESPACE,
  type CatalogItem,
  type ClientToServerEvents,
  type Entitlements,
  type Purchase,
  type PurchaseRequest,
  type PurchaseState,
  type ServerToClientEvents,
} from '../protocol/index.js';

export const FAKE_CATALOG: CatalogItem[] = [
  { id: 'sword', kind: 'permanent', name: 'Sword', amount: 0.25, currency: 'usd' },
  { id: 'gems', kind: 'consumable', name: '100 gems', amount: 0.1, currency: 'usd' },
  { id: 'crown', kind: 'unique', name: 'Crown', amount: 1, currency: 'usd' },
];

/** Tokens the fake accepts, mapped to player ids. */
export const FAKE_TOKENS: Record<string, string> = { 'token-alice': 'alice', 'token-bob': 'bob' };

type Event = keyof ClientToServerEvents;
type KitSocket = Socket<ClientToServerEvents, ServerToClientEvents>;

export interface FakeKitOptions {
  /** Extra fields merged into the catalog acknowledgement, for example `{ streamUrl }`. */
  catalogExtra?: Record<string, unknown>;
  /** Serve the socket.io server on this existing HTTP server instead of a new one. */
  httpServer?: HttpServer;
}

export class FakeKit {
  readonly http: HttpServer;
  readonly io: Server<ClientToServerEvents, ServerToClientEvents>;
  /** Every request received, in order, with the player who sent it. */
  readonly requests: { event: Event; playerId: string; payload: unknown }[] = [];
  readonly purchases = new Map<string, Purchase>();
  /** Called with each purchase request before it is handled, so a test can inspect the device's state at that moment. */
  onPurchaseRequest: ((request: PurchaseRequest, playerId: string) => void) | undefined;

  private readonly dropAcks = new Map<Event, number>();
  private readonly disconnectBeforeAck = new Map<Event, number>();
  private readonly owner = new Map<string, string>();
  /** Purchase id → owning player id. */
  private readonly players = new Map<string, string>();
  /** Idempotency scope (player, item and, for consumables, attempt id) → the purchase created for it. */
  private readonly scopes = new Map<string, Promise<Purchase>>();
  private nextId = 1;
  private clock = 1_000;

  constructor(private readonly options: FakeKitOptions = {}) {
    this.http = options.httpServer ?? createServer();
    this.io = new Server(this.http, { cors: { origin: '*' } });
    const namespace = this.io.of(CODE_PAY_NAMESPACE);

    namespace.use((socket, next) => {
      const token = (socket.handshake.auth as { token?: unknown }).token;
      const playerId = typeof token === 'string' ? FAKE_TOKENS[token] : undefined;
      if (!playerId) {
        next(new Error('unauthenticated'));
        return;
      }
      socket.data.playerId = playerId;
      next();
    });

    namespace.on('connection', (socket: KitSocket) => this.onConnection(socket));
  }

  async listen(): Promise<string> {
    // The first derivation loads the scan code encoder; doing it now keeps the first acknowledgement fast.
    await deriveRendezvous({ clientSecret: bs58.encode(randomBytes(11)), amount: 0.25, currency: 'usd' });

    if (!this.options.httpServer) {
      await new Promise<void>((resolve) => this.http.listen(0, '127.0.0.1', resolve));
    }
    const { port } = this.http.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  async close(): Promise<void> {
    this.io.disconnectSockets(true);
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
  }

  /** Handles the next `count` requests of `event` without acknowledging them, as if the acknowledgement was lost. */
  dropNextAcks(event: Event, count = 1): void {
    this.dropAcks.set(event, count);
  }

  /** Handles the next `count` requests of `event`, then closes the transport before acknowledging them. */
  disconnectBeforeNextAcks(event: Event, count = 1): void {
    this.disconnectBeforeAck.set(event, count);
  }

  /** Closes every client's transport, so the clients reconnect on their own. */
  dropConnections(): void {
    for (const socket of this.io.of(CODE_PAY_NAMESPACE).sockets.values()) {
      socket.conn.close();
    }
  }

  count(event: Event): number {
    return this.requests.filter((request) => request.event === event).length;
  }

  /** Moves a purchase to `state` and pushes it to its player, as the kit does after a confirmation. */
  setState(purchaseId: string, state: PurchaseState): Purchase {
    const current = this.purchases.get(purchaseId);
    if (!current) throw new Error(`no purchase ${purchaseId}`);

    const next = { ...current, state, updatedAt: this.tick() };
    this.purchases.set(purchaseId, next);
    if (state === 'granted') this.owner.set(`${this.playerOf(next)}:${next.itemId}`, next.id);
    this.io.of(CODE_PAY_NAMESPACE).to(this.playerOf(next)).emit('purchase:updated', next);
    return next;
  }

  /** Pays and grants a purchase, pushing both transitions. */
  payAndGrant(purchaseId: string): Purchase {
    this.setState(purchaseId, 'paid');
    return this.setState(purchaseId, 'granted');
  }

  entitlementsOf(playerId: string): Entitlements {
    const result: Entitlements = {};
    for (const purchase of this.purchases.values()) {
      if (purchase.state === 'granted' && this.playerOf(purchase) === playerId) {
        result[purchase.itemId] = (result[purchase.itemId] ?? 0) + 1;
      }
    }
    return result;
  }

  private playerOf(purchase: Purchase): string {
    return this.players.get(purchase.id) ?? '';
  }

  private tick(): number {
    this.clock += 1;
    return this.clock;
  }

  private onConnection(socket: KitSocket): void {
    const playerId = socket.data.playerId as string;
    void socket.join(playerId);

    socket.on('catalog', (ack) => {
      this.record('catalog', playerId, null);
      this.answer(socket, 'catalog', () => ack({ ok: true, items: FAKE_CATALOG, ...this.options.catalogExtra }));
    });

    socket.on('sync', (ack) => {
      this.record('sync', playerId, null);
      const purchases = [...this.purchases.values()].filter((purchase) => this.playerOf(purchase) === playerId);
      this.answer(socket, 'sync', () => ack({ ok: true, purchases, entitlements: this.entitlementsOf(playerId) }));
    });

    socket.on('revalidate', (request, ack) => {
      this.record('revalidate', playerId, request);
      const purchase = this.purchases.get(request?.purchaseId);
      if (!purchase || this.playerOf(purchase) !== playerId) {
        this.answer(socket, 'revalidate', () => ack({ ok: false, error: { code: 'not_found', message: 'no such purchase' } }));
        return;
      }
      // Like the kit, a decline reported by the browser moves a pending purchase to `cancelled`.
      const current = request.hint === 'cancelled' && purchase.state === 'pending' ? this.setState(purchase.id, 'cancelled') : purchase;
      this.answer(socket, 'revalidate', () => ack({ ok: true, purchase: current }));
    });

    socket.on('purchase', async (request, ack) => {
      this.record('purchase', playerId, request);
      this.onPurchaseRequest?.(request, playerId);
      const result = await this.purchase(request, playerId);
      this.answer(socket, 'purchase', () => ack(result));
    });
  }

  private async purchase(request: PurchaseRequest, playerId: string) {
    const item = FAKE_CATALOG.find((candidate) => candidate.id === request?.itemId);
    if (!item) return { ok: false as const, error: { code: 'unknown_item' as const, message: 'unknown item' } };
    if (item.kind === 'consumable' && !request.attemptId) {
      return { ok: false as const, error: { code: 'invalid_request' as const, message: 'attemptId is required for consumables' } };
    }
    if (item.kind !== 'consumable' && this.owner.has(`${playerId}:${item.id}`)) {
      return { ok: false as const, error: { code: 'already_owned' as const, message: `${item.id} is already owned` } };
    }

    const scope = item.kind === 'consumable' ? `${playerId}:${item.id}:${request.attemptId}` : `${playerId}:${item.id}`;
    let created = this.scopes.get(scope);
    if (!created) {
      // The scope is taken before the first await, so a duplicate request arriving meanwhile waits for the same purchase.
      created = this.createPurchase(item, playerId, request.attemptId);
      this.scopes.set(scope, created);
    }
    const purchase = await created;
    return { ok: true as const, purchase: this.purchases.get(purchase.id) ?? purchase };
  }

  private async createPurchase(item: CatalogItem, playerId: string, attemptId: string | undefined): Promise<Purchase> {
    const id = `p${this.nextId++}`;
    const now = this.tick();
    // A random client secret with its real intent id, so the plugin's scan code check passes.
    const clientSecret = bs58.encode(randomBytes(11));
    const { intentId } = await deriveRendezvous({ clientSecret, amount: item.amount, currency: item.currency });
    const purchase: Purchase = {
      id,
      itemId: item.id,
      kind: item.kind,
      state: 'pending',
      intentId,
      clientSecret,
      amount: item.amount,
      currency: item.currency,
      destination: 'E8otxw1CVX9bfyddKu3ZB3BVLa4VVF9J7CTPdnUwT9jR',
      ...(attemptId ? { attemptId } : {}),
      createdAt: now,
      updatedAt: now,
    };
    this.purchases.set(id, purchase);
    this.players.set(id, playerId);
    return purchase;
  }

  private record(event: Event, playerId: string, payload: unknown): void {
    this.requests.push({ event, playerId, payload });
  }

  private answer(socket: KitSocket, event: Event, send: () => void): void {
    const drops = this.dropAcks.get(event) ?? 0;
    if (drops > 0) {
      this.dropAcks.set(event, drops - 1);
      return;
    }

    const disconnects = this.disconnectBeforeAck.get(event) ?? 0;
    if (disconnects > 0) {
      this.disconnectBeforeAck.set(event, disconnects - 1);
      socket.conn.close();
      return;
    }

    send();
  }
}
