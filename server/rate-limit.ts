// Per-player token buckets for socket requests, held in this process's memory.
// NOTE: with several kit instances each instance limits on its own, so a
// player connected to N instances gets N times the rate.

export interface RateLimitOptions {
  /** Requests a player may send at once after a quiet period. */
  burst: number;
  /** Tokens added back per second, up to `burst`. */
  perSecond: number;
}

export const DEFAULT_RATE_LIMIT: RateLimitOptions = { burst: 20, perSecond: 5 };

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
