// Reads the sample game server's configuration from environment variables.
// Every variable is parsed with zod, and an invalid value stops start-up with
// an error that names the variable and the expected form.

import path from 'node:path';

import bs58 from 'bs58';
import { z } from 'zod';

/**
 * The sandbox destination used when `CODE_PAY_DESTINATION` is unset: the
 * base58 form of sha256("phaser-code-pay sample game destination"). It is a
 * well-formed 32-byte address that no real wallet owns, so it is only useful
 * against a sandbox sequencer.
 */
export const SANDBOX_DESTINATION = 'ELS2rU9As8Niq6UNxRdNbJTeJsGCUYhYuSEfGeCGWtjH';

export const DEFAULT_DATABASE_PATH = path.join('.data', 'sample-game.db');

/** Build policy for the game client at start-up: build when changed, always, or never. */
export type BuildMode = 'auto' | 'always' | 'skip';

/** Location of the purchase store: a SQLite file or a PostgreSQL URL. */
export type DatabaseConfig = { sqlite: string } | { postgres: string };

/** An external sequencer; when absent the server starts a sandbox in its own process. */
export interface ExternalSequencer {
  endpoint: string;
  publicKey: string;
}

/** Tuning of the kit's background work, for tests and operators; unset fields keep the kit's defaults. */
export interface PollingConfig {
  intervalMs?: number;
  firstCheckAfterMs?: number;
  maxCheckIntervalMs?: number;
  leaseMs?: number;
}

export interface SampleGameConfig {
  host: string;
  port: number;
  sandboxPort: number;
  sequencer: ExternalSequencer | undefined;
  database: DatabaseConfig;
  /** Redis shared by the instances, for socket.io fan-out and the rate limit; undefined on a single instance. */
  redisUrl: string | undefined;
  polling: PollingConfig;
  /** Per-player socket request limit; unset fields keep the kit's defaults. */
  rateLimit: { burst?: number; perSecond?: number };
  /** Time limit of one sequencer request (ms); undefined keeps the kit's default. */
  sequencerTimeoutMs: number | undefined;
  /** Directory for files the server generates: secrets, the sandbox data file. */
  dataDirectory: string;
  webhookUrl: string | undefined;
  keySecret: string | undefined;
  destination: string;
  tokenSecret: string | undefined;
  build: BuildMode;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** A configuration problem found at start-up; the message names the variable. */
export class EnvironmentError extends Error {
  readonly variable: string;

  constructor(variable: string, message: string) {
    super(`${variable} ${message}`);
    this.name = 'EnvironmentError';
    this.variable = variable;
  }
}

const portSchema = z.coerce
  .number({ error: 'must be a port number' })
  .int('must be a whole number')
  .min(0, 'must be between 0 and 65535 (0 picks a free port)')
  .max(65535, 'must be between 0 and 65535 (0 picks a free port)');

const hostSchema = z
  .string()
  .min(1, 'must not be empty')
  .regex(/^[A-Za-z0-9.:-]+$/, 'must be a host name or an IP address such as 127.0.0.1');

const httpUrlSchema = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });

const base58AddressSchema = z.string().refine(isBase58Address, 'must be a base58 Ed25519 public key (32 bytes)');

const buildModeSchema = z.enum(['auto', 'always', 'skip'], { error: 'must be auto, always or skip' });

const logLevelSchema = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
  error: 'must be one of fatal, error, warn, info, debug, trace, silent',
});

const redisUrlSchema = z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' });

const millisecondsSchema = z.coerce
  .number({ error: 'must be a number of milliseconds' })
  .int('must be a whole number of milliseconds')
  .min(1, 'must be at least 1 ms')
  .max(24 * 60 * 60_000, 'must be at most one day in ms');

const tokenSecretSchema = z.string().min(32, 'must be at least 32 characters long');

/**
 * Parses the server's environment. Throws `EnvironmentError` for the first
 * invalid variable. `cwd` resolves relative paths such as the default database.
 */
export function readConfig(env: NodeJS.ProcessEnv, cwd: string = process.cwd()): SampleGameConfig {
  const host = parseVariable(env, 'HOST', hostSchema, '127.0.0.1');
  const port = parseVariable(env, 'PORT', portSchema, 8080);
  const sandboxPort = parseVariable(env, 'SANDBOX_PORT', portSchema, 8081);

  const sequencer = readExternalSequencer(env);
  const database = readDatabase(env, cwd);
  const dataDirectory = 'sqlite' in database ? path.dirname(database.sqlite) : path.resolve(cwd, '.data');

  const redisUrl = parseOptional(env, 'CODE_PAY_REDIS_URL', redisUrlSchema);
  const polling = readPolling(env);
  const rateLimit = readRateLimit(env);
  const sequencerTimeoutMs = parseOptional(env, 'CODE_SEQUENCER_TIMEOUT_MS', millisecondsSchema);

  const webhookUrl = parseOptional(env, 'CODE_PAY_WEBHOOK_URL', httpUrlSchema);
  const keySecret = parseOptional(env, 'CODE_PAY_KEY_SECRET', z.string().min(1, 'must not be empty'));
  const destination = parseVariable(env, 'CODE_PAY_DESTINATION', base58AddressSchema, SANDBOX_DESTINATION);
  const tokenSecret = parseOptional(env, 'SAMPLE_GAME_TOKEN_SECRET', tokenSecretSchema);
  const build = parseVariable(env, 'SAMPLE_GAME_BUILD', buildModeSchema, 'auto');
  const logLevel = parseVariable(env, 'LOG_LEVEL', logLevelSchema, 'info');

  if (sequencer !== undefined && keySecret === undefined && !isLoopbackUrl(sequencer.endpoint)) {
    throw new EnvironmentError(
      'CODE_PAY_KEY_SECRET',
      'is required with a sequencer that is not on this machine; set it to 32 random bytes in hex (openssl rand -hex 32)',
    );
  }

  if ('postgres' in database && keySecret === undefined) {
    throw new EnvironmentError(
      'CODE_PAY_KEY_SECRET',
      'is required with a PostgreSQL database, because every instance must derive the same idempotency keys; ' +
        'set it to the same 32 random bytes in hex on every instance (openssl rand -hex 32)',
    );
  }
  if ('postgres' in database && tokenSecret === undefined) {
    throw new EnvironmentError(
      'SAMPLE_GAME_TOKEN_SECRET',
      'is required with a PostgreSQL database, because a guest token from one instance must be valid on every other; ' +
        'set it to the same random string of at least 32 characters on every instance',
    );
  }

  return {
    host,
    port,
    sandboxPort,
    sequencer,
    database,
    redisUrl,
    polling,
    rateLimit,
    sequencerTimeoutMs,
    dataDirectory,
    webhookUrl,
    keySecret,
    destination,
    tokenSecret,
    build,
    logLevel,
  };
}

function readExternalSequencer(env: NodeJS.ProcessEnv): ExternalSequencer | undefined {
  const endpoint = parseOptional(env, 'CODE_SEQUENCER_URL', httpUrlSchema);
  const publicKey = parseOptional(env, 'CODE_SEQUENCER_PUBLIC_KEY', base58AddressSchema);

  if (endpoint === undefined && publicKey === undefined) {
    return undefined;
  }
  if (endpoint === undefined) {
    throw new EnvironmentError('CODE_SEQUENCER_URL', 'is missing; set it together with CODE_SEQUENCER_PUBLIC_KEY');
  }
  if (publicKey === undefined) {
    throw new EnvironmentError(
      'CODE_SEQUENCER_PUBLIC_KEY',
      "is missing; set it to the sequencer's webhook signing public key together with CODE_SEQUENCER_URL",
    );
  }

  return { endpoint: endpoint.replace(/\/+$/, ''), publicKey };
}

function readPolling(env: NodeJS.ProcessEnv): PollingConfig {
  const fields: [keyof PollingConfig, string][] = [
    ['intervalMs', 'CODE_PAY_POLL_INTERVAL_MS'],
    ['firstCheckAfterMs', 'CODE_PAY_FIRST_CHECK_MS'],
    ['maxCheckIntervalMs', 'CODE_PAY_MAX_CHECK_INTERVAL_MS'],
    ['leaseMs', 'CODE_PAY_LEASE_MS'],
  ];

  const polling: PollingConfig = {};
  for (const [field, variable] of fields) {
    const value = parseOptional(env, variable, millisecondsSchema);
    if (value !== undefined) {
      polling[field] = value;
    }
  }
  return polling;
}

function readRateLimit(env: NodeJS.ProcessEnv): SampleGameConfig['rateLimit'] {
  const rateSchema = z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(100_000, 'must be at most 100000');
  const burst = parseOptional(env, 'CODE_PAY_RATE_LIMIT_BURST', rateSchema);
  const perSecond = parseOptional(env, 'CODE_PAY_RATE_LIMIT_PER_SECOND', rateSchema);

  const rateLimit: SampleGameConfig['rateLimit'] = {};
  if (burst !== undefined) {
    rateLimit.burst = burst;
  }
  if (perSecond !== undefined) {
    rateLimit.perSecond = perSecond;
  }
  return rateLimit;
}

function readDatabase(env: NodeJS.ProcessEnv, cwd: string): DatabaseConfig {
  const value = env.CODE_PAY_DATABASE_URL?.trim();
  if (value === undefined || value === '') {
    return { sqlite: path.resolve(cwd, DEFAULT_DATABASE_PATH) };
  }

  if (/^postgres(ql)?:\/\//.test(value)) {
    return { postgres: value };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new EnvironmentError(
      'CODE_PAY_DATABASE_URL',
      'must be a SQLite file path (for example .data/sample-game.db) or a postgres:// URL',
    );
  }

  const filePath = value.replace(/^(sqlite|file):/, '');
  if (filePath === '') {
    throw new EnvironmentError('CODE_PAY_DATABASE_URL', 'names no file after its sqlite: or file: prefix');
  }
  return { sqlite: path.resolve(cwd, filePath) };
}

function parseVariable<T>(env: NodeJS.ProcessEnv, name: string, schema: z.ZodType<T>, fallback: T): T {
  return parseOptional(env, name, schema) ?? fallback;
}

function parseOptional<T>(env: NodeJS.ProcessEnv, name: string, schema: z.ZodType<T>): T | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') {
    return undefined;
  }

  const result = schema.safeParse(raw.trim());
  if (!result.success) {
    const reason = result.error.issues[0]?.message ?? 'is invalid';
    throw new EnvironmentError(name, `${reason} (got ${JSON.stringify(describeValue(name, raw))})`);
  }
  return result.data;
}

/** Shows a rejected value in an error, except for secrets. */
function describeValue(name: string, raw: string): string {
  return /SECRET/.test(name) ? `<${raw.length} characters>` : raw;
}

function isBase58Address(value: string): boolean {
  try {
    return bs58.decode(value).length === 32;
  } catch {
    return false;
  }
}

/** True when a URL points at this machine (127.0.0.0/8, ::1 or localhost). */
export function isLoopbackUrl(value: string): boolean {
  const hostname = new URL(value).hostname;
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}
