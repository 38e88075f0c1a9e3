// The `/code-pay` socket.io namespace: authenticates each connection with the
// game's `authenticate` function, parses every request with a schema, limits
// each player's request rate, acknowledges every request and pushes
// `purchase:updated` to a room per player.

import type { Logger } from 'pino';
import type { Namespace, Server, Socket } from 'socket.io';
import { z } from 'zod';

import {
  ATTEMPT_ID_PATTERN,
  CODE_PAY_NAMESPACE,
  ITEM_ID_PATTERN,
  type Ack,
  type CatalogItem,
  type ClientToServerEvents,
  type ErrorBody,
  type ServerToClientEvents,
} from '../protocol/index.js';
import { CodePayError } from './errors.js';
import { MAX_PLAYER_ID_LENGTH } from './purchase-creation.js';
import { toPublicPurchase, type PurchaseService } from './purchases.js';
import { RateLimiter, type PlayerRateLimiter, type RateLimitOptions } from './rate-limit.js';
import type { StoredPurchase } from './store/types.js';

/** The socket.io handshake the game's `authenticate` function receives; the plugin puts its token in `handshake.auth.token`. */
export type Handshake = Socket['handshake'];

/** Resolves the player id of a connection; throwing or returning an empty id rejects it with `unauthenticated`. */
export type Authenticate = (handshake: Handshake) => string | Promise<string>;

export interface SocketData {
  playerId: string;
}

export type CodePayNamespace = Namespace<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
type CodePaySocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export interface SocketLayerOptions {
  purchases: PurchaseService;
  authenticate: Authenticate;
  /** The per-player request limit, in memory or shared through Redis; the kit closes it. */
  limiter: PlayerRateLimiter;
  /** Per-socket request limit, checked before the per-player one. */
  connectionRateLimit: RateLimitOptions;
  /** Most sockets of the namespace from one client address on this instance. */
  maxConnectionsPerAddress: number;
  logger: Logger;
  /** WebSocket URL of the sequencer's message stream, sent with the catalog so the plugin can follow an intent. */
  streamUrl?: string;
}


const purchaseRequestSchema = z.strictObject({
  itemId: z.string().regex(ITEM_ID_PATTERN, 'expected 1 to 64 letters, digits, ".", "-" or "_"'),
  attemptId: z.string().regex(ATTEMPT_ID_PATTERN, 'expected 8 to 64 letters, digits, "-" or "_" (a UUID fits)').optional(),
});

const revalidateRequestSchema = z.strictObject({
  purchaseId: z.string().min(1).max(128),
  /** `cancelled` when the wallet reported that the player declined; see `RevalidateHint`. */
  hint: z.enum(['cancelled']).optional(),
});

/** `catalog` and `sync` take no payload; an empty object is tolerated. */
const emptyRequestSchema = z.union([z.undefined(), z.strictObject({})]);

/** The request events of the namespace. Any other event is acknowledged with `invalid_request`. */
const REQUEST_EVENTS: ReadonlySet<string> = new Set<keyof ClientToServerEvents>(['catalog', 'purchase', 'revalidate', 'sync']);

/** Room of every socket of one player, on every instance that shares the adapter. */
export function playerRoom(playerId: string): string {
  return `code-pay:player:${playerId}`;
}

export class SocketLayer {
  private readonly options: SocketLayerOptions;
  private readonly limiter: PlayerRateLimiter;
  /** One token bucket per connected socket, by socket id. */
  private readonly connectionLimiters = new Map<string, RateLimiter>();
  /** Sockets connected or being authenticated, by client address. */
  private readonly connectionsByAddress = new Map<string, number>();
  private readonly namespaces: CodePayNamespace[] = [];
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(options: SocketLayerOptions) {
    this.options = options;
    this.limiter = options.limiter;
    this.unsubscribe = options.purchases.onUpdate((purchase) => this.pushUpdate(purchase));
  }

  /** Registers the `/code-pay` namespace on `io`. Throws when this kit is already attached to it. */
  attach(io: Server): CodePayNamespace {
    const namespace = io.of(CODE_PAY_NAMESPACE) as unknown as CodePayNamespace;
    if (this.namespaces.includes(namespace)) {
      throw new CodePayError('internal', 'This kit is already attached to that socket.io server; call attach(io) once per server.');
    }

    namespace.use((socket, next) => {
      if (this.closed) {
        next(connectError('internal', 'The payment server is shutting down; reconnect to another instance or try again later.'));
        return;
      }
      const address = socket.handshake.address;
      if (!this.reserveConnection(address)) {
        this.options.logger.warn({ address, maxConnectionsPerAddress: this.options.maxConnectionsPerAddress }, 'socket rejected: too many connections from this address');
        next(connectError('rate_limited', 'Too many connections from this address; close other tabs or try again later.'));
        return;
      }
      this.authenticate(socket).then(
        () => next(),
        (error: Error) => {
          this.releaseConnection(address);
          next(error);
        },
      );
    });
    namespace.on('connection', (socket) => this.onConnection(socket));

    this.namespaces.push(namespace);
    return namespace;
  }

  /** Disconnects this instance's sockets of the namespace, rejects new ones and stops the pushes. Called by `close()`. */
  close(): void {
    this.closed = true;
    this.unsubscribe();
    for (const namespace of this.namespaces) {
      namespace.removeAllListeners('connection');
      namespace.local.disconnectSockets();
    }
  }

  private async authenticate(socket: CodePaySocket): Promise<void> {
    let playerId: unknown;
    try {
      playerId = await this.options.authenticate(socket.handshake);
    } catch (error) {
      this.options.logger.warn({ err: error, address: socket.handshake.address }, 'socket rejected: authenticate threw');
      throw unauthenticated('Authentication failed; connect with a valid auth token.');
    }

    if (typeof playerId !== 'string' || playerId.length === 0 || playerId.length > MAX_PLAYER_ID_LENGTH) {
      this.options.logger.warn({ address: socket.handshake.address }, 'socket rejected: authenticate returned no valid player id');
      throw unauthenticated('Authentication failed; connect with a valid auth token.');
    }
    socket.data.playerId = playerId;
  }

  /**
   * Counts a connection from `address`; false when the address is at its limit.
   * NOTE: a connection that a later middleware of the game rejects keeps its
   * place until the process restarts, because socket.io reports no event for it.
   */
  private reserveConnection(address: string): boolean {
    const count = this.connectionsByAddress.get(address) ?? 0;
    if (count >= this.options.maxConnectionsPerAddress) {
      return false;
    }
    this.connectionsByAddress.set(address, count + 1);
    return true;
  }

  private releaseConnection(address: string): void {
    const count = (this.connectionsByAddress.get(address) ?? 1) - 1;
    if (count <= 0) {
      this.connectionsByAddress.delete(address);
    } else {
      this.connectionsByAddress.set(address, count);
    }
  }

  /** Takes a token from the socket's own bucket, then from the player's; resolves with the reason when either is empty. */
  private async takeRequestToken(socket: CodePaySocket): Promise<'connection' | 'player' | undefined> {
    const connection = this.connectionLimiters.get(socket.id);
    if (connection !== undefined && !connection.take(socket.id)) {
      return 'connection';
    }
    return (await this.limiter.take(socket.data.playerId)) ? undefined : 'player';
  }

  private onConnection(socket: CodePaySocket): void {
    const playerId = socket.data.playerId;
    void socket.join(playerRoom(playerId));
    this.connectionLimiters.set(socket.id, new RateLimiter(this.options.connectionRateLimit));
    socket.once('disconnect', (reason, description) => {
      this.connectionLimiters.delete(socket.id);
      this.releaseConnection(socket.handshake.address);
      if (reason === 'transport error') {
        // engine.io closes a connection whose message exceeds the socket.io server's maxHttpBufferSize this way.
        this.options.logger.warn(
          { playerId, address: socket.handshake.address, err: description },
          'socket closed by a transport error, for example a message larger than maxHttpBufferSize',
        );
      }
    });
    socket.onAny((event: unknown, ...args: unknown[]) => this.rejectUnknownEvent(socket, event, args));

    this.handle(socket, 'catalog', emptyRequestSchema, async () => {
      const streamUrl = this.options.streamUrl;
      return streamUrl === undefined ? { items: this.catalogItems() } : { items: this.catalogItems(), streamUrl };
    });

    this.handle(socket, 'purchase', purchaseRequestSchema, async (request) => {
      const purchase = await this.options.purchases.createPurchase(playerId, request);
      return { purchase: toPublicPurchase(purchase) };
    });

    this.handle(socket, 'revalidate', revalidateRequestSchema, async (request) => {
      const purchase = await this.options.purchases.revalidate(playerId, request.purchaseId, request.hint);
      return { purchase: toPublicPurchase(purchase) };
    });

    this.handle(socket, 'sync', emptyRequestSchema, async () => {
      const [purchases, entitlements] = await Promise.all([
        this.options.purchases.listPurchases(playerId),
        this.options.purchases.entitlements(playerId),
      ]);
      return { purchases: purchases.map(toPublicPurchase), entitlements };
    });
  }

  /**
   * Listens for one request event. The acknowledgement is the last argument;
   * everything before it is the payload, parsed with `schema`. A request
   * without an acknowledgement is logged and ignored, because its response
   * could not reach the client.
   */
  private handle<Schema extends z.ZodType, Result extends object>(
    socket: CodePaySocket,
    event: keyof ClientToServerEvents,
    schema: Schema,
    run: (request: z.output<Schema>) => Promise<Result>,
  ): void {
    const playerId = socket.data.playerId;
    const { logger } = this.options;

    // The typed `on` assumes well-formed clients; requests arrive as untrusted arguments.
    const untyped = socket as unknown as { on(event: string, listener: (...args: unknown[]) => void): void };
    untyped.on(event, (...args: unknown[]) => {
      const ack = args.length > 0 ? args[args.length - 1] : undefined;
      if (typeof ack !== 'function') {
        logger.warn({ playerId, event }, 'socket request without an acknowledgement callback; ignored');
        return;
      }
      const reply = ack as (response: Ack<Result>) => void;

      this.takeRequestToken(socket).then(
        (limited) => {
          if (limited !== undefined) {
            logger.warn({ playerId, event, limit: limited }, 'socket request rate-limited');
            reply(failure(rateLimited(limited)));
            return;
          }
          this.dispatch(playerId, event, schema, run, args, reply);
        },
        (error: unknown) => reply(failure(this.errorBody(error, playerId, event))),
      );
    });
  }

  /**
   * Acknowledges an event this namespace does not handle with
   * `invalid_request`, so a client with a typo or another protocol version
   * gets a response instead of waiting for its timeout. It counts against the
   * player's rate limit like any request.
   */
  private rejectUnknownEvent(socket: CodePaySocket, event: unknown, args: unknown[]): void {
    const playerId = socket.data.playerId;
    if (typeof event === 'string' && REQUEST_EVENTS.has(event)) {
      return;
    }
    const name = typeof event === 'string' ? event.slice(0, 64) : `(${typeof event})`;
    const ack = args.length > 0 ? args[args.length - 1] : undefined;
    if (typeof ack !== 'function') {
      this.options.logger.warn({ playerId, event: name }, 'unknown socket event without an acknowledgement callback; ignored');
      return;
    }
    const reply = ack as (response: Ack<never>) => void;

    this.takeRequestToken(socket).then(
      (limited) => {
        if (limited !== undefined) {
          this.options.logger.warn({ playerId, event: name, limit: limited }, 'socket request rate-limited');
          reply(failure(rateLimited(limited)));
          return;
        }
        this.options.logger.warn({ playerId, event: name }, 'unknown socket event');
        reply(
          failure({
            code: 'invalid_request',
            message: `Unknown event ${JSON.stringify(name)}; this server handles ${[...REQUEST_EVENTS].join(', ')}.`,
          }),
        );
      },
      (error: unknown) => reply(failure(this.errorBody(error, playerId, name))),
    );
  }

  /** Parses the payload of a request that passed the rate limit, runs it and acknowledges the result. */
  private dispatch<Schema extends z.ZodType, Result extends object>(
    playerId: string,
    event: keyof ClientToServerEvents,
    schema: Schema,
    run: (request: z.output<Schema>) => Promise<Result>,
    args: unknown[],
    reply: (response: Ack<Result>) => void,
  ): void {
    const payloads = args.slice(0, -1);
    const parsed = payloads.length <= 1 ? schema.safeParse(payloads[0]) : undefined;
    if (!parsed || !parsed.success) {
      const detail = parsed ? describeIssues(parsed.error) : `expected at most one payload, got ${payloads.length}`;
      this.options.logger.warn({ playerId, event, detail }, 'invalid socket request');
      reply(failure({ code: 'invalid_request', message: `Invalid ${event} request: ${detail}.` }));
      return;
    }

    run(parsed.data).then(
      (result) => reply({ ok: true, ...result }),
      (error: unknown) => reply(failure(this.errorBody(error, playerId, event))),
    );
  }

  private errorBody(error: unknown, playerId: string, event: string): ErrorBody {
    if (error instanceof CodePayError && error.code !== 'internal') {
      // The purchase service logged sequencer errors already; the rest are the player's outcomes.
      this.options.logger.info({ playerId, event, code: error.code, ...error.context }, 'socket request failed');
      return error.toBody();
    }
    this.options.logger.error({ playerId, event, err: error }, 'socket request failed with an internal error');
    return { code: 'internal', message: 'Internal error in the payment server; try again later.' };
  }

  private catalogItems(): CatalogItem[] {
    return [...this.options.purchases.catalog.values()].map((item) => {
      const published: CatalogItem = { id: item.id, kind: item.kind, name: item.name, amount: item.amount, currency: item.currency };
      if (item.description !== undefined) {
        published.description = item.description;
      }
      return published;
    });
  }

  private pushUpdate(purchase: StoredPurchase): void {
    for (const namespace of this.namespaces) {
      namespace.to(playerRoom(purchase.playerId)).emit('purchase:updated', toPublicPurchase(purchase));
    }
  }
}

function rateLimited(limit: 'connection' | 'player'): ErrorBody {
  const source = limit === 'connection' ? 'on this connection' : 'from this player';
  return { code: 'rate_limited', message: `Too many requests ${source}; wait a moment and try again.` };
}

function failure(error: ErrorBody): { ok: false; error: ErrorBody } {
  return { ok: false, error };
}

/** Creates a handshake error; socket.io sends `data` to the client with its `connect_error`. */
function connectError(code: ErrorBody['code'], message: string): Error & { data: ErrorBody } {
  const error = new Error(message) as Error & { data: ErrorBody };
  error.data = { code, message };
  return error;
}

function unauthenticated(message: string): Error & { data: ErrorBody } {
  return connectError('unauthenticated', message);
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : 'payload'}: ${issue.message}`)
    .join('; ');
}
