// The options of `createCodePay` and their defaults, resolved into the
// settings the kit's parts take.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';

import type { Logger } from 'pino';

import type { CatalogItem, PurchaseKind } from '../protocol/index.js';
import { DEFAULT_CHECK_SCHEDULE, type CheckSchedule } from './check-schedule.js';
import { ConfigError } from './errors.js';
import { formatKeySecret, generateKeySecret, parseKeySecret } from './keys.js';
import type { KitMetricsOptions } from './metrics.js';
import { DEFAULT_RATE_LIMIT, type RateLimitOptions } from './rate-limit.js';
import type { Authenticate } from './socket.js';
import type { StoreConfig } from './store/index.js';
import type { GrantHandler } from './store/types.js';
import { CODE_WEBHOOK_PUBLIC_KEY, MAX_WEBHOOK_BYTES } from './webhook.js';

/** Code's production sequencer. */
export const CODE_SEQUENCER_ENDPOINT = 'https://cash.getcode.com/v1';

export interface CatalogItemOptions {
  id: string;
  kind: PurchaseKind;
  name: string;
  description?: string;
  /** In the currency's major unit, for example 0.25. */
  amount: number;
  /** Currency code in any case, for example `usd`. */
  currency: string;
}

export interface PollingOptions extends Partial<CheckSchedule> {
  /** How often the loop looks for due status checks and grant retries (ms). Default 1,000. */
  intervalMs?: number;
  /** Maximum concurrent GetStatus calls and grants per pass. Default 8. */
  concurrency?: number;
  /** Purchases taken per pass and per reconciliation page. Default 100. */
  batchSize?: number;
}

export interface CodePayOptions {
  /** Names the game in every idempotency key, so two games sharing a key secret never share intents. */
  gameId: string;
  catalog: readonly CatalogItemOptions[];
  /** Base58 address of the Code wallet that receives every payment. */
  destination: string;
  /**
   * Secret of the idempotency keys (`CODE_PAY_KEY_SECRET`): hex or base64 of at
   * least 32 random bytes. Required outside the sandbox; in the sandbox one is
   * generated and kept in a file next to the SQLite database.
   */
  keySecret?: string | Uint8Array;
  store: StoreConfig;
  sequencer?: {
    /** Default Code's production endpoint, `https://cash.getcode.com/v1`. */
    endpoint?: string;
    /** Base58 Ed25519 key that signs webhooks. Default Code's production key. */
    publicKey?: string;
    /** Time limit of one sequencer request (ms). Default 10,000. */
    timeoutMs?: number;
  };
  /** True against a sandbox sequencer. Default: true when the endpoint's host is loopback. */
  sandbox?: boolean;
  /** Public URL of this server's `POST /code-pay/webhook`, registered for each new intent. */
  webhookUrl?: string;
  authenticate: Authenticate;
  grant: GrantHandler;
  /** A pino logger; the kit logs through a child of it with secrets redacted. */
  logger?: Logger;
  polling?: PollingOptions;
  /** How long a `unique` item is held for the player who requested it (ms). Default 10 minutes. */
  uniqueHoldMs?: number;
  /** Per-player socket request limit. Default a burst of 20 and 5 per second. */
  rateLimit?: Partial<RateLimitOptions>;
  /** Largest webhook body accepted (bytes). Default 16 KiB. */
  webhookBodyLimit?: number;
  metrics?: KitMetricsOptions;
}

export interface KitSettings {
  gameId: string;
  catalog: CatalogItem[];
  destination: string;
  keySecret: Uint8Array;
  sandbox: boolean;
  store: StoreConfig;
  sequencer: { endpoint: string; publicKey: string; timeoutMs?: number };
  webhookUrl?: string;
  schedule: CheckSchedule;
  polling: { intervalMs: number; concurrency: number; batchSize: number };
  uniqueHoldMs: number;
  rateLimit: RateLimitOptions;
  webhookBodyLimit: number;
  metrics: KitMetricsOptions;
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** Resolves the options into settings with defaults; throws `ConfigError` naming the option and the fix. */
export function resolveKitOptions(options: CodePayOptions): KitSettings {
  if (typeof options.authenticate !== 'function') {
    throw new ConfigError('Missing option `authenticate`: pass a function (handshake) => playerId.');
  }
  if (typeof options.grant !== 'function') {
    throw new ConfigError('Missing option `grant`: pass an async function (purchase, tx) that gives the player the item.');
  }

  const endpoint = options.sequencer?.endpoint ?? CODE_SEQUENCER_ENDPOINT;
  const sandbox = options.sandbox ?? isLoopback(endpoint);
  const polling = options.polling ?? {};

  return {
    gameId: options.gameId,
    catalog: options.catalog.map((item) => ({ ...item, currency: item.currency.toLowerCase() })),
    destination: options.destination,
    keySecret: resolveKeySecret(options, sandbox),
    sandbox,
    store: options.store,
    sequencer: { endpoint, publicKey: options.sequencer?.publicKey ?? CODE_WEBHOOK_PUBLIC_KEY, timeoutMs: options.sequencer?.timeoutMs },
    webhookUrl: options.webhookUrl,
    schedule: { ...DEFAULT_CHECK_SCHEDULE, ...withoutUndefined(polling) },
    polling: { intervalMs: polling.intervalMs ?? 1_000, concurrency: polling.concurrency ?? 8, batchSize: polling.batchSize ?? 100 },
    uniqueHoldMs: options.uniqueHoldMs ?? 10 * 60_000,
    rateLimit: { ...DEFAULT_RATE_LIMIT, ...withoutUndefined(options.rateLimit ?? {}) },
    webhookBodyLimit: options.webhookBodyLimit ?? MAX_WEBHOOK_BYTES,
    metrics: options.metrics ?? {},
  };
}

function isLoopback(endpoint: string): boolean {
  try {
    return LOOPBACK_HOSTS.has(new URL(endpoint).hostname);
  } catch {
    return false;
  }
}

/**
 * The key secret from the options; in the sandbox without one, the secret kept
 * next to the SQLite file (created on first start), so idempotency keys survive
 * a restart.
 */
function resolveKeySecret(options: CodePayOptions, sandbox: boolean): Uint8Array {
  if (options.keySecret !== undefined) {
    return parseKeySecret(options.keySecret, { sandbox });
  }
  if (!sandbox) {
    throw new ConfigError(
      'Missing option `keySecret` (CODE_PAY_KEY_SECRET): production needs a secret of at least 32 random bytes; ' +
        `generate one with node -e "console.log(require('crypto').randomBytes(32).toString('hex'))".`,
    );
  }

  const sqlitePath = 'sqlite' in options.store ? options.store.sqlite : undefined;
  if (sqlitePath === undefined || sqlitePath === ':memory:') {
    return generateKeySecret();
  }

  const secretFile = `${sqlitePath}.key-secret`;
  if (existsSync(secretFile)) {
    return parseKeySecret(readFileSync(secretFile, 'utf8').trim(), { sandbox });
  }
  const secret = generateKeySecret();
  writeFileSync(secretFile, `${formatKeySecret(secret)}\n`, { mode: 0o600, flag: 'wx' });
  return secret;
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as Partial<T>;
}
