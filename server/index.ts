// The public entry of `phaser-code-pay/server`: `createCodePay` wires the
// purchase store, the sequencer client, the purchase service, the confirmation
// loop, the socket namespace and the Express routes into one handle.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';

import type { Router } from 'express';
import type { Server } from 'socket.io';
import type { Logger } from 'pino';

import type { Entitlements, PurchaseRequest } from '../protocol/index.js';
import { ConfirmationLoop } from './confirmations.js';
import { createRouter } from './http.js';
import { createKitLogger } from './logger.js';
import { createMetrics, type KitMetrics } from './metrics.js';
import { resolveKitOptions, type CodePayOptions, type KitSettings } from './kit-options.js';
import { MemoryRateLimiter, RedisRateLimiter, type PlayerRateLimiter } from './rate-limit.js';
import { PurchaseService, type RevalidateHint } from './purchases.js';
import { createSequencerClient } from './sequencer.js';
import { SocketLayer } from './socket.js';
import { openStore } from './store/index.js';
import type { PurchaseStore, StoredPurchase } from './store/types.js';
import { checkClaimsAgainstPurchase, createWebhookVerifier } from './webhook.js';

export interface CodePay {
  /** True when the kit runs against a sandbox sequencer (relaxed key secret rules). */
  readonly sandbox: boolean;
  /** The purchase store, for the game's own schema and reads in `store.transaction(fn)`. */
  readonly store: PurchaseStore;
  /** The kit's Prometheus metrics (its own registry). */
  readonly metrics: KitMetrics;
  /** Settles when the start-up reconciliation has checked every open purchase once, except those another instance had claimed. */
  readonly reconciled: Promise<void>;

  /** Registers the `/code-pay` namespace on a socket.io server. */
  attach(io: Server): void;
  /** An Express router with `POST /code-pay/webhook`, `GET /healthz` and `GET /metrics`. */
  router(): Router;

  /** Server-side form of the socket `purchase` request, for games that do not use the plugin's socket. */
  createPurchase(playerId: string, request: PurchaseRequest): Promise<StoredPurchase>;
  /** Server-side form of the socket `revalidate` request. */
  revalidate(playerId: string, purchaseId: string, hint?: RevalidateHint): Promise<StoredPurchase>;
  listPurchases(playerId: string): Promise<StoredPurchase[]>;
  entitlements(playerId: string): Promise<Entitlements>;
  /** Runs one pass of status checks and grant retries now, besides the timer. */
  runConfirmations(): Promise<void>;

  /** Stops polling and grant retries, disconnects sockets, waits for work in flight and closes the store. Idempotent. */
  close(): Promise<void>;
}

/** Creates the backend kit: opens and migrates the store, then starts reconciliation and polling. */
export async function createCodePay(options: CodePayOptions): Promise<CodePay> {
  const settings = resolveKitOptions(options);
  const logger = createKitLogger(options.logger);
  // Names this instance in the background work leases it takes in the store.
  const instanceId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const metrics = createMetrics(settings.metrics);

  const verifier = createWebhookVerifier({ publicKey: settings.sequencer.publicKey, maxBytes: settings.webhookBodyLimit });
  const sequencer = createSequencerClient({
    endpoint: settings.sequencer.endpoint,
    timeoutMs: settings.sequencer.timeoutMs,
    logger,
    metrics,
  });

  // The store is the last step that can fail, so a failed start-up leaves no open database.
  let store: PurchaseStore;
  try {
    store = await openStore(settings.store, logger.child({ module: 'store' }));
  } catch (error) {
    sequencer.close();
    throw error;
  }

  let limiter: PlayerRateLimiter;
  try {
    limiter = await createRateLimiter(settings, logger);
  } catch (error) {
    await store.close();
    sequencer.close();
    throw error;
  }

  const purchases = new PurchaseService({
    gameId: settings.gameId,
    catalog: settings.catalog,
    destination: settings.destination,
    keySecret: settings.keySecret,
    store,
    sequencer,
    webhookUrl: settings.webhookUrl,
    grant: options.grant,
    logger,
    metrics,
    schedule: settings.schedule,
    uniqueHoldMs: settings.uniqueHoldMs,
  });
  const sockets = new SocketLayer({
    purchases,
    authenticate: options.authenticate,
    limiter,
    connectionRateLimit: settings.connectionRateLimit,
    maxConnectionsPerAddress: settings.maxConnectionsPerAddress,
    logger,
    streamUrl: settings.sandbox ? sandboxStreamUrl(settings.sequencer.endpoint) : undefined,
  });
  const loop = new ConfirmationLoop({
    store,
    purchases,
    logger,
    pollIntervalMs: settings.polling.intervalMs,
    concurrency: settings.polling.concurrency,
    batchSize: settings.polling.batchSize,
    leaseMs: settings.polling.leaseMs,
    instanceId,
  });

  loop.start();
  logger.info(
    { gameId: settings.gameId, sandbox: settings.sandbox, endpoint: settings.sequencer.endpoint, items: settings.catalog.length, instanceId },
    'code-pay kit started',
  );

  let closing: Promise<void> | undefined;

  return {
    sandbox: settings.sandbox,
    store,
    metrics,
    reconciled: loop.reconciled,

    attach(io) {
      sockets.attach(io);
    },

    router() {
      return createRouter({
        purchases,
        store,
        verifier,
        checkClaims: checkClaimsAgainstPurchase,
        metrics,
        logger,
        webhookBodyLimit: settings.webhookBodyLimit,
      });
    },

    createPurchase: (playerId, request) => purchases.createPurchase(playerId, request),
    revalidate: (playerId, purchaseId, hint) => purchases.revalidate(playerId, purchaseId, hint),
    listPurchases: (playerId) => purchases.listPurchases(playerId),
    entitlements: (playerId) => purchases.entitlements(playerId),
    runConfirmations: async () => {
      await loop.tick();
    },

    close() {
      closing ??= (async () => {
        await loop.stop();
        sockets.close();
        await limiter.close();
        await purchases.drain();
        sequencer.close();
        await store.close();
        logger.info({ gameId: settings.gameId }, 'code-pay kit stopped');
      })();
      return closing;
    },
  };
}

/** Creates the per-player rate limit: shared through Redis when the `redis` option is set, otherwise in this process's memory. */
async function createRateLimiter(settings: KitSettings, logger: Logger): Promise<PlayerRateLimiter> {
  if (settings.redis === undefined) {
    return new MemoryRateLimiter(settings.rateLimit);
  }
  return RedisRateLimiter.connect({
    ...settings.rateLimit,
    url: settings.redis.url,
    keyPrefix: `code-pay:rate:${settings.gameId}:`,
    logger,
  });
}

/**
 * Returns the message stream URL of a sandbox sequencer: its endpoint with a
 * WebSocket scheme and `/ws` appended (`http://127.0.0.1:8081/v1` becomes
 * `ws://127.0.0.1:8081/v1/ws`).
 * NOTE: the kit sends no stream URL for Code's production service, because
 * the SDK sources at hand do not name one; the plugin's `streamUrl` option
 * can set it.
 */
function sandboxStreamUrl(endpoint: string): string {
  const url = new URL(endpoint);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/ws`;
  return url.toString();
}

export { CodePayError, ConfigError } from './errors.js';
export { CatalogConfigError } from './catalog.js';
export type { ErrorContext } from './errors.js';
export type { CodePayOptions } from './kit-options.js';
export type { Authenticate, Handshake } from './socket.js';
export type { RevalidateHint } from './purchases.js';
export { toPublicPurchase } from './purchases.js';
export type {
  GrantHandler,
  GrantOutcome,
  PaymentReview,
  PurchaseStore,
  StoreTransaction,
  StoredPurchase,
  TransitionLogEntry,
} from './store/types.js';
export type { KitMetrics } from './metrics.js';
export { signTestWebhook, generateTestWebhookKeys, WebhookRejectedError, CODE_WEBHOOK_PUBLIC_KEY } from './webhook.js';
export type { WebhookClaims } from './webhook.js';
export { generateKeySecret, formatKeySecret } from './keys.js';
export type { CatalogItem, Entitlements, Purchase, PurchaseKind, PurchaseRequest, PurchaseState } from '../protocol/index.js';
