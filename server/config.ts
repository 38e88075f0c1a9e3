// Validation of the `createCodePay` options. A zod schema checks every option's
// type and range, then the catalog, destination and key secret get their own
// checks. Every problem becomes a ConfigError that names the option and the
// fix, and all problems are reported at once, so a game developer fixes the
// configuration in one pass instead of one restart per mistake.
import bs58 from 'bs58';
import { z } from 'zod';

import type { CatalogItem } from '../protocol/index.js';
import { CatalogConfigError, validateCatalog, validateDestination } from './catalog.js';
import { DEFAULT_CHECK_SCHEDULE, type CheckSchedule } from './check-schedule.js';
import { ConfigError } from './errors.js';
import { parseKeySecret } from './keys.js';
import type { Logger } from './logger.js';
import type { KitMetricsOptions } from './metrics.js';
import { DEFAULT_RATE_LIMIT, type RateLimitOptions } from './rate-limit.js';
import { DEFAULT_SEQUENCER_TIMEOUT_MS } from './sequencer.js';
import { CODE_WEBHOOK_PUBLIC_KEY, MAX_WEBHOOK_BYTES } from './webhook.js';

/** Code's production sequencer endpoint, as `@code-wallet/client` 2.0.8 uses it by default. */
export const CODE_SEQUENCER_ENDPOINT = 'https://cash.getcode.com/v1';

/** The environment variable read when the `keySecret` option is not set. */
export const KEY_SECRET_ENV = 'CODE_PAY_KEY_SECRET';

/** Game ids: 1 to 64 letters, digits, `.`, `-` and `_`. */
export const GAME_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/** Defaults of the polling loop (the status check schedule comes from DEFAULT_CHECK_SCHEDULE). */
export const DEFAULT_POLLING = { intervalMs: 1_000, concurrency: 8, batchSize: 100, leaseMs: 30_000 } as const;

/** How long a `unique` item is held for the player who requested it, in milliseconds. */
export const DEFAULT_UNIQUE_HOLD_MS = 10 * 60_000;

/**
 * Default of `maxConnectionsPerAddress`. It is the TCP peer's address, so
 * behind a reverse proxy every player shares the proxy's address; raise it there.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 100;

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** Host of Code's production service; the sandbox flag is never accepted against it. */
const CODE_PRODUCTION_HOST = new URL(CODE_SEQUENCER_ENDPOINT).hostname;

const DAY_MS = 24 * 60 * 60_000;

function milliseconds(max: number) {
  return z
    .number({ error: 'expected a number of milliseconds' })
    .int('expected a whole number of milliseconds')
    .min(1, 'expected at least 1 ms')
    .max(max, `expected at most ${max} ms`);
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname.length > 0;
  } catch {
    return false;
  }
}

function isBase58PublicKey(value: string): boolean {
  try {
    return bs58.decode(value).length === 32;
  } catch {
    return false;
  }
}

const httpUrl = z.string({ error: 'expected a URL string' }).refine(isHttpUrl, 'expected an absolute http:// or https:// URL');

function isFunction(value: unknown): value is (...args: never[]) => unknown {
  return typeof value === 'function';
}

function isPinoLike(value: unknown): value is Logger {
  if (typeof value !== 'object' || value === null) {
    return false;
  }
  const candidate = value as Record<string, unknown>;
  return ['info', 'warn', 'error', 'debug', 'child'].every((method) => typeof candidate[method] === 'function');
}

const storeSchema = z.union(
  [
    z.object({ sqlite: z.string().min(1), busyTimeoutMs: z.number().int().min(0).optional() }).strict(),
    z
      .object({
        postgres: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// connection URL'),
        maxConnections: z.number().int().min(1).optional(),
        connectionTimeoutMs: z.number().int().min(1).optional(),
      })
      .strict(),
  ],
  { error: 'expected { sqlite: "./code-pay.db" } (a database file path) or { postgres: "postgres://…" }' },
);

const sequencerSchema = z
  .object({
    endpoint: httpUrl.optional(),
    publicKey: z
      .string({ error: 'expected a base58 string' })
      .refine(isBase58PublicKey, 'expected the base58 form of a 32-byte Ed25519 public key')
      .optional(),
    timeoutMs: milliseconds(5 * 60_000).optional(),
  })
  .strict();

const pollingSchema = z
  .object({
    intervalMs: milliseconds(60 * 60_000).optional(),
    concurrency: z.number().int().min(1).max(1000).optional(),
    batchSize: z.number().int().min(1).max(10_000).optional(),
    leaseMs: milliseconds(60 * 60_000).optional(),
    firstCheckAfterMs: milliseconds(DAY_MS).optional(),
    maxCheckIntervalMs: milliseconds(DAY_MS).optional(),
    expireAfterMs: milliseconds(30 * DAY_MS).optional(),
    lateCheckIntervalMs: milliseconds(DAY_MS).optional(),
    lateCheckWindowMs: milliseconds(365 * DAY_MS).optional(),
    grantRetryFirstMs: milliseconds(DAY_MS).optional(),
    grantRetryMaxMs: milliseconds(DAY_MS).optional(),
  })
  .strict();

const rateLimitSchema = z
  .object({
    burst: z.number().int().min(1).max(100_000).optional(),
    perSecond: z.number().positive().max(100_000).optional(),
  })
  .strict();

const redisSchema = z
  .object({
    url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL such as "redis://127.0.0.1:6379"'),
  })
  .strict();

const metricsSchema = z
  .object({
    prefix: z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/, 'expected a Prometheus metric name prefix such as "code_pay_"').optional(),
    collectDefaultMetrics: z.boolean().optional(),
    defaultLabels: z.record(z.string(), z.string()).optional(),
  })
  .strict();

/** The structure of the `createCodePay` options; the catalog, destination and key secret get their own checks afterwards. */
export const codePayOptionsSchema = z
  .object({
    gameId: z
      .string({ error: 'expected a string such as "space-shooter"' })
      .regex(GAME_ID_PATTERN, "expected 1 to 64 letters, digits, '.', '-' or '_'"),
    catalog: z.unknown(),
    destination: z.unknown(),
    keySecret: z.union([z.string(), z.instanceof(Uint8Array)], { error: 'expected a hex or base64 string, or bytes' }).optional(),
    store: storeSchema,
    sequencer: sequencerSchema.optional(),
    sandbox: z.boolean({ error: 'expected true or false' }).optional(),
    webhookUrl: httpUrl.optional(),
    authenticate: z.custom<(...args: never[]) => unknown>(isFunction, 'expected a function (handshake) => playerId'),
    grant: z.custom<(...args: never[]) => unknown>(isFunction, 'expected an async function (purchase, tx) that gives the player the item'),
    logger: z.custom<Logger>(isPinoLike, 'expected a pino logger').optional(),
    polling: pollingSchema.optional(),
    uniqueHoldMs: milliseconds(DAY_MS).optional(),
    rateLimit: rateLimitSchema.optional(),
    connectionRateLimit: rateLimitSchema.optional(),
    maxConnectionsPerAddress: z.number().int().min(1).max(1_000_000).optional(),
    redis: redisSchema.optional(),
    webhookBodyLimit: z.number().int().min(1024).max(1024 * 1024).optional(),
    metrics: metricsSchema.optional(),
  })
  .strict();

export type CodePayOptionsInput = z.input<typeof codePayOptionsSchema>;

/** The options after validation, with every default applied. */
export interface ValidatedConfig {
  gameId: string;
  catalog: CatalogItem[];
  destination: string;
  /** Undefined only in the sandbox without a configured secret: the kit then generates and keeps one. */
  keySecret: Uint8Array | undefined;
  sandbox: boolean;
  store: z.infer<typeof storeSchema>;
  sequencer: { endpoint: string; publicKey: string; timeoutMs: number };
  webhookUrl?: string;
  schedule: CheckSchedule;
  polling: { intervalMs: number; concurrency: number; batchSize: number; leaseMs: number };
  /** Shared state of the per-player rate limit; undefined keeps it in this process's memory. */
  redis?: { url: string };
  uniqueHoldMs: number;
  rateLimit: RateLimitOptions;
  /** Per-socket request limit, in this process's memory. */
  connectionRateLimit: RateLimitOptions;
  /** Most sockets of the namespace from one client address on this instance. */
  maxConnectionsPerAddress: number;
  webhookBodyLimit: number;
  metrics: KitMetricsOptions;
}

/** Fixes for options whose schema message alone does not say what to do. */
const OPTION_HINTS: Record<string, string> = {
  gameId: 'set gameId to a short, stable name of the game; it is part of every idempotency key, so never change it after launch',
  authenticate: 'pass authenticate: (handshake) => playerId, which reads handshake.auth.token',
  grant: 'pass grant: async (purchase, tx) => { … }, which gives the player the item inside the transaction',
  webhookUrl: 'set it to the public URL of this server\'s POST /code-pay/webhook route, or leave it out to rely on polling',
  'sequencer.endpoint': 'use https://cash.getcode.com/v1 in production or the sandbox\'s endpoint in development',
  'sequencer.publicKey': `use Code's key ${CODE_WEBHOOK_PUBLIC_KEY} in production or the key the sandbox prints at start-up`,
};

/** Reads the value at an issue's path in the options as given. */
function valueAt(options: unknown, path: readonly PropertyKey[]): unknown {
  let value = options;
  for (const key of path) {
    if (typeof value !== 'object' || value === null) {
      return undefined;
    }
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function formatIssue(issue: z.core.$ZodIssue, options: unknown): string {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const where = path.length > 0 ? ` in \`${path}\`` : '';
    return `Unknown option${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => `\`${key}\``).join(', ')}${where}; check the spelling against docs/API.md.`;
  }
  if (path.length === 0) {
    return `Invalid options: ${issue.message}; pass an object with gameId, catalog, destination, store, authenticate and grant.`;
  }

  const hint = OPTION_HINTS[path];
  const missing = valueAt(options, issue.path) === undefined;
  const head = missing ? `Missing option \`${path}\`` : `Invalid option \`${path}\``;
  return `${head}: ${issue.message}${hint ? `; ${hint}` : ''}.`;
}

function isLoopbackEndpoint(endpoint: string): boolean {
  return LOOPBACK_HOSTS.has(new URL(endpoint).hostname);
}

/** Runs a check that throws ConfigError and collects its message instead. */
function collect<T>(problems: string[], check: () => T): T | undefined {
  try {
    return check();
  } catch (error) {
    if (error instanceof CatalogConfigError) {
      problems.push(...error.problems.map((problem) => `Invalid option \`catalog\`: ${problem}`));
      return undefined;
    }
    if (error instanceof ConfigError) {
      problems.push(error.message);
      return undefined;
    }
    throw error;
  }
}

/**
 * Validates the `createCodePay` options and applies the defaults. Throws one
 * ConfigError that lists every problem, each naming the option and the fix.
 * Reads the key secret from `CODE_PAY_KEY_SECRET` when the option is not set;
 * the error messages never contain the secret.
 */
export function validateConfig(options: unknown, env: NodeJS.ProcessEnv = process.env): ValidatedConfig {
  const parsed = codePayOptionsSchema.safeParse(options);
  if (!parsed.success) {
    throw new ConfigError(joinProblems(parsed.error.issues.map((issue) => formatIssue(issue, options))));
  }
  const input = parsed.data;
  const problems: string[] = [];

  const endpoint = (input.sequencer?.endpoint ?? CODE_SEQUENCER_ENDPOINT).replace(/\/+$/, '');
  const sandbox = input.sandbox ?? isLoopbackEndpoint(endpoint);
  if (sandbox && new URL(endpoint).hostname === CODE_PRODUCTION_HOST) {
    problems.push(
      `Invalid option \`sandbox\`: true while sequencer.endpoint is Code's production service (${endpoint}); the sandbox relaxes the key secret rules, so set sequencer.endpoint to the sandbox's endpoint or remove sandbox: true.`,
    );
  }
  if (sandbox && input.webhookUrl !== undefined && input.sequencer?.publicKey === undefined) {
    problems.push(
      'Missing option `sequencer.publicKey`: with the sandbox and a webhookUrl, webhooks are signed with the sandbox\'s key, which Code\'s default key rejects; pass the publicKey the sandbox prints (or startSandbox().publicKey).',
    );
  }

  const catalog = collect(problems, () => validateCatalog(input.catalog, { sandbox }));
  const destination = collect(problems, () => validateDestination(input.destination));
  const keySecret = collect(problems, () => resolveKeySecret(input.keySecret, env, sandbox));

  const schedule = resolveSchedule(input.polling ?? {});
  if (schedule.maxCheckIntervalMs < schedule.firstCheckAfterMs) {
    problems.push(
      `Invalid option \`polling.maxCheckIntervalMs\`: ${schedule.maxCheckIntervalMs} ms is less than polling.firstCheckAfterMs (${schedule.firstCheckAfterMs} ms); raise it or lower firstCheckAfterMs.`,
    );
  }
  if (schedule.grantRetryMaxMs < schedule.grantRetryFirstMs) {
    problems.push(
      `Invalid option \`polling.grantRetryMaxMs\`: ${schedule.grantRetryMaxMs} ms is less than polling.grantRetryFirstMs (${schedule.grantRetryFirstMs} ms); raise it or lower grantRetryFirstMs.`,
    );
  }

  const timeoutMs = input.sequencer?.timeoutMs ?? DEFAULT_SEQUENCER_TIMEOUT_MS;
  const leaseMs = input.polling?.leaseMs ?? DEFAULT_POLLING.leaseMs;
  if (leaseMs <= timeoutMs) {
    problems.push(
      `Invalid option \`polling.leaseMs\`: ${leaseMs} ms is not longer than sequencer.timeoutMs (${timeoutMs} ms), so another instance could repeat a status check still in flight; raise leaseMs or lower timeoutMs.`,
    );
  }

  if (problems.length > 0) {
    throw new ConfigError(joinProblems(problems));
  }

  const rateLimit: RateLimitOptions = { ...DEFAULT_RATE_LIMIT, ...withoutUndefined(input.rateLimit ?? {}) };
  return {
    gameId: input.gameId,
    catalog: catalog!,
    destination: destination!,
    keySecret,
    sandbox,
    store: input.store,
    sequencer: {
      endpoint,
      publicKey: input.sequencer?.publicKey ?? CODE_WEBHOOK_PUBLIC_KEY,
      timeoutMs,
    },
    webhookUrl: input.webhookUrl,
    schedule,
    polling: {
      intervalMs: input.polling?.intervalMs ?? DEFAULT_POLLING.intervalMs,
      concurrency: input.polling?.concurrency ?? DEFAULT_POLLING.concurrency,
      batchSize: input.polling?.batchSize ?? DEFAULT_POLLING.batchSize,
      leaseMs,
    },
    redis: input.redis,
    uniqueHoldMs: input.uniqueHoldMs ?? DEFAULT_UNIQUE_HOLD_MS,
    rateLimit,
    // Defaults to the per-player limit, so a game that raised `rateLimit` is not held back per connection.
    connectionRateLimit: { ...rateLimit, ...withoutUndefined(input.connectionRateLimit ?? {}) },
    maxConnectionsPerAddress: input.maxConnectionsPerAddress ?? DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
    webhookBodyLimit: input.webhookBodyLimit ?? MAX_WEBHOOK_BYTES,
    metrics: input.metrics ?? {},
  };
}

/**
 * Parses the key secret from the option or `CODE_PAY_KEY_SECRET` with
 * `parseKeySecret` (at least 32 bytes of high-entropy material outside the
 * sandbox). Returns undefined in the sandbox when neither is set. Throws
 * ConfigError in production when neither is set.
 */
function resolveKeySecret(option: string | Uint8Array | undefined, env: NodeJS.ProcessEnv, sandbox: boolean): Uint8Array | undefined {
  const fromEnv = env[KEY_SECRET_ENV];
  const value = option ?? (fromEnv !== undefined && fromEnv.trim() !== '' ? fromEnv : undefined);
  if (value !== undefined) {
    return parseKeySecret(value, { sandbox });
  }
  if (sandbox) {
    return undefined;
  }
  throw new ConfigError(
    `Missing option \`keySecret\` (or the ${KEY_SECRET_ENV} environment variable): production needs a secret of at least 32 random bytes, because it keeps idempotency keys private to this game; ` +
      `generate one with node -e "console.log(require('crypto').randomBytes(32).toString('hex'))" and keep it stable, since a new secret gives every purchase a new intent.`,
  );
}

/** Takes the status check and grant retry schedule fields of the `polling` option over the defaults. */
function resolveSchedule(polling: z.infer<typeof pollingSchema>): CheckSchedule {
  const schedule: CheckSchedule = { ...DEFAULT_CHECK_SCHEDULE };
  for (const field of Object.keys(DEFAULT_CHECK_SCHEDULE) as (keyof CheckSchedule)[]) {
    const value = polling[field];
    if (value !== undefined) {
      schedule[field] = value;
    }
  }
  return schedule;
}

function joinProblems(problems: readonly string[]): string {
  if (problems.length === 1) {
    return problems[0]!;
  }
  return [`Invalid code-pay configuration (${problems.length} problems):`, ...problems.map((problem) => `- ${problem}`)].join('\n');
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as Partial<T>;
}
