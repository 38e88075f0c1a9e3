// Per-player token buckets for socket requests. `RateLimiter` keeps them in
// this process's memory. `RedisRateLimiter` keeps them in Redis, so the limit
// holds for a player connected to several kit instances at once.

import type { Logger } from 'pino';
import { createClient } from 'redis';

import { ConfigError } from './errors.js';

export interface RateLimitOptions {
  /** Requests a player may send at once after a quiet period. */
  burst: number;
  /** Tokens added back per second, up to `burst`. */
  perSecond: number;
}

export const DEFAULT_RATE_LIMIT: RateLimitOptions = { burst: 20, perSecond: 5 };

/** The per-player limit that the socket layer checks before it handles a request. */
export interface PlayerRateLimiter {
  /** Takes one token from the player's bucket; resolves false when it is empty. */
  take(playerId: string): Promise<boolean>;
  /** Stops timers and closes connections. */
  close(): Promise<void>;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class RateLimiter {
  private readonly options: RateLimitOptions;
  private readonly now: () => number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(options: RateLimitOptions, now: () => number = Date.now) {
    this.options = options;
    this.now = now;
  }

  /** Takes one token from the player's bucket; false when it is empty. */
  take(playerId: string): boolean {
    const now = this.now();
    const bucket = this.buckets.get(playerId) ?? { tokens: this.options.burst, updatedAt: now };

    const refill = ((now - bucket.updatedAt) / 1000) * this.options.perSecond;
    bucket.tokens = Math.min(this.options.burst, bucket.tokens + refill);
    bucket.updatedAt = now;

    if (bucket.tokens < 1) {
      this.buckets.set(playerId, bucket);
      return false;
    }
    bucket.tokens -= 1;
    this.buckets.set(playerId, bucket);
    return true;
  }

  /** Forgets buckets that are full again, so the map does not grow with every player ever seen. */
  prune(): void {
    const now = this.now();
    for (const [playerId, bucket] of this.buckets) {
      const refill = ((now - bucket.updatedAt) / 1000) * this.options.perSecond;
      if (bucket.tokens + refill >= this.options.burst) {
        this.buckets.delete(playerId);
      }
    }
  }
}

/** The in-memory limiter behind the `PlayerRateLimiter` interface, pruned once a minute. */
export class MemoryRateLimiter implements PlayerRateLimiter {
  private readonly limiter: RateLimiter;
  private readonly pruneTimer: NodeJS.Timeout;

  constructor(options: RateLimitOptions, now?: () => number) {
    this.limiter = new RateLimiter(options, now);
    this.pruneTimer = setInterval(() => this.limiter.prune(), 60_000);
    this.pruneTimer.unref();
  }

  async take(playerId: string): Promise<boolean> {
    return this.limiter.take(playerId);
  }

  async close(): Promise<void> {
    clearInterval(this.pruneTimer);
  }
}

/**
 * One token bucket per key in a Redis hash, refilled and taken in one script,
 * so concurrent requests on several instances never take the same token.
 * The clock is Redis's `TIME`, so clock skew between instances does not
 * matter. The key expires once the bucket would be full again.
 * KEYS[1]: bucket key. ARGV: burst, tokens per second. Returns 1 or 0.
 */
const TAKE_TOKEN_SCRIPT = `
local burst = tonumber(ARGV[1])
local per_second = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local stored = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(stored[1]) or burst
local at = tonumber(stored[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * per_second / 1000)

local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / per_second * 1000) + 1000)
return allowed
`;

export interface RedisRateLimiterOptions extends RateLimitOptions {
  url: string;
  /** Prefix of the bucket keys; the kit uses `code-pay:rate:<gameId>:`. */
  keyPrefix: string;
  logger: Logger;
}

/** Minimum time between two log lines about Redis errors (ms). */
const ERROR_LOG_INTERVAL_MS = 10_000;

/** How long the first connection may take before start-up fails (ms). */
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * The per-player limit in Redis, shared by every instance. While Redis is
 * unreachable, requests are limited by this instance's memory instead, so an
 * outage of Redis loosens the limit but never blocks players.
 */
export class RedisRateLimiter implements PlayerRateLimiter {
  private readonly options: RedisRateLimiterOptions;
  private readonly client: ReturnType<typeof createClient>;
  private readonly fallback: MemoryRateLimiter;
  private lastErrorLogAt = 0;
  private failuresSinceLog = 0;

  private constructor(options: RedisRateLimiterOptions) {
    this.options = options;
    this.fallback = new MemoryRateLimiter(options);
    this.client = createClient({
      url: options.url,
      socket: { connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 5_000) },
    });
    this.client.on('error', (error: unknown) => this.logFailure(error));
  }

  /** Connects to Redis; throws `ConfigError` when the first connection fails. */
  static async connect(options: RedisRateLimiterOptions): Promise<RedisRateLimiter> {
    const limiter = new RedisRateLimiter(options);
    try {
      await withTimeout(limiter.client.connect(), CONNECT_TIMEOUT_MS);
    } catch (error) {
      await limiter.close();
      throw new ConfigError(
        `Cannot connect to Redis at ${redactRedisUrl(options.url)} for the shared rate limit: ${(error as Error).message}. ` +
          'Check that Redis runs and the `redis.url` option, or leave the option out to limit each instance on its own.',
      );
    }
    return limiter;
  }

  async take(playerId: string): Promise<boolean> {
    if (!this.client.isReady) {
      return this.fallback.take(playerId);
    }
    try {
      const allowed = await this.client.eval(TAKE_TOKEN_SCRIPT, {
        keys: [`${this.options.keyPrefix}${playerId}`],
        arguments: [String(this.options.burst), String(this.options.perSecond)],
      });
      return Number(allowed) === 1;
    } catch (error) {
      this.logFailure(error);
      return this.fallback.take(playerId);
    }
  }

  async close(): Promise<void> {
    await this.fallback.close();
    if (this.client.isOpen) {
      await this.client.close().catch(() => undefined);
    } else {
      this.client.destroy();
    }
  }

  /** Logs Redis errors at most once per interval, with the count of those left out. */
  private logFailure(error: unknown): void {
    this.failuresSinceLog += 1;
    const now = Date.now();
    if (now - this.lastErrorLogAt < ERROR_LOG_INTERVAL_MS) {
      return;
    }
    this.options.logger.warn(
      { err: error, redis: redactRedisUrl(this.options.url), failures: this.failuresSinceLog },
      'Redis rate limit failed; limiting players in this instance only until Redis is back',
    );
    this.lastErrorLogAt = now;
    this.failuresSinceLog = 0;
  }
}

/** Returns the Redis URL without its password, for messages and logs. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') {
      parsed.password = '***';
    }
    return parsed.toString();
  } catch {
    return '<unparsable Redis URL>';
  }
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
