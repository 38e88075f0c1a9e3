// The typed options of `createCodePay`, and their resolution into the
// settings the kit's parts take (validation lives in config.ts).

import { existsSync, readFileSync, writeFileSync } from 'node:fs';

import type { Logger } from 'pino';

import type { PurchaseKind } from '../protocol/index.js';
import type { CheckSchedule } from './check-schedule.js';
import { validateConfig, type ValidatedConfig } from './config.js';
import { ConfigError } from './errors.js';
import { formatKeySecret, generateKeySecret, parseKeySecret } from './keys.js';
import type { KitMetricsOptions } from './metrics.js';
import type { RateLimitOptions } from './rate-limit.js';
import type { Authenticate } from './socket.js';
import type { StoreConfig } from './store/index.js';
import type { GrantHandler } from './store/types.js';

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
  /**
   * How long an instance's claim on a purchase's status check or grant retry
   * lasts (ms). Another instance takes the work over after it, for example
   * when this one died. Must be longer than `sequencer.timeoutMs`. Default 30,000.
   */
  leaseMs?: number;
}

export interface CodePayOptions {
  /** Names the game in every idempotency key, so two games sharing a key secret never share intents. */
  gameId: string;
  catalog: readonly CatalogItemOptions[];
  /** Base58 address of the Code wallet that receives every payment. */
  destination: string;
  /**
   * Secret of the idempotency keys: hex or base64 of at least 32 random bytes.
   * Read from `CODE_PAY_KEY_SECRET` when not set. Required outside the sandbox;
   * in the sandbox without one, the kit generates one and keeps it in the file
   * `<sqlite path>.key-secret`.
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
  /** Per-socket request limit, checked before the per-player one, in this process's memory. Default: the same as `rateLimit`. */
  connectionRateLimit?: Partial<RateLimitOptions>;
  /**
   * Most sockets of the `/code-pay` namespace from one client address on this
   * instance; a further connection is rejected with `rate_limited`. The
   * address is the TCP peer's, so behind a reverse proxy raise it. Default 100.
   */
  maxConnectionsPerAddress?: number;
  /**
   * Redis shared by every instance of the game, for the per-player rate limit.
   * Without it each instance limits on its own. Fan-out of `purchase:updated`
   * comes from the socket.io adapter of the `io` passed to `attach`, not from this.
   */
  redis?: { url: string };
  /** Largest webhook body accepted (bytes). Default 16 KiB. */
  webhookBodyLimit?: number;
  metrics?: KitMetricsOptions;
}

export type KitSettings = ValidatedConfig & { keySecret: Uint8Array };

/**
 * Validates the options with `validateConfig` (every problem in one
 * `ConfigError` naming the option and the fix) and resolves the sandbox's key
 * secret when none is configured.
 */
export function resolveKitOptions(options: CodePayOptions, env: NodeJS.ProcessEnv = process.env): KitSettings {
  const config = validateConfig(options, env);
  const keySecret = config.keySecret ?? sandboxKeySecret(config.store);
  return { ...config, keySecret };
}

/**
 * Loads or creates the key secret of a sandbox kit started without one. It is
 * kept in a file next to the SQLite database (created on first start), so
 * idempotency keys, and with them the intents, survive a restart. An
 * in-memory database gets a new secret on every start.
 */
function sandboxKeySecret(store: ValidatedConfig['store']): Uint8Array {
  if ('postgres' in store) {
    // Instances sharing a database must derive the same keys, and a key
    // secret generated here would differ per instance and per restart.
    throw new ConfigError(
      'Missing key secret: with a PostgreSQL store every instance needs the same secret, even against a sandbox. ' +
        'Set the keySecret option or CODE_PAY_KEY_SECRET to 32 random bytes in hex (openssl rand -hex 32).',
    );
  }
  const sqlitePath = store.sqlite;
  if (sqlitePath === undefined || sqlitePath === ':memory:') {
    return generateKeySecret();
  }

  const secretFile = `${sqlitePath}.key-secret`;
  if (existsSync(secretFile)) {
    return parseKeySecret(readFileSync(secretFile, 'utf8').trim(), { sandbox: true });
  }
  const secret = generateKeySecret();
  writeFileSync(secretFile, `${formatKeySecret(secret)}\n`, { mode: 0o600, flag: 'wx' });
  return secret;
}
