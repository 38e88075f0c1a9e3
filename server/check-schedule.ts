// When the kit next requests the status of an open purchase from the
// sequencer, and when it next retries a failed grant. Pure functions of the
// stored row and the clock, so every instance sharing a database computes the
// same schedule.

import type { StoredPurchase } from './store/types.js';

export interface CheckSchedule {
  /** Delay of the first status check after creation, and the base of the backoff (ms). */
  firstCheckAfterMs: number;
  /** Ceiling of the doubling backoff between status checks (ms). */
  maxCheckIntervalMs: number;
  /** Age at which a pending or cancelled purchase becomes `expired` (ms since creation). */
  expireAfterMs: number;
  /** Interval of the rare checks of an expired purchase, because a late payment must still be granted (ms). */
  lateCheckIntervalMs: number;
  /** How long after expiry the rare checks go on; after that only webhooks and `revalidate` confirm (ms). */
  lateCheckWindowMs: number;
  /** First delay before a failed grant handler runs again; doubles per failure (ms). */
  grantRetryFirstMs: number;
  /** Ceiling of the grant retry backoff (ms). */
  grantRetryMaxMs: number;
}

export const DEFAULT_CHECK_SCHEDULE: CheckSchedule = {
  firstCheckAfterMs: 2_000,
  maxCheckIntervalMs: 60_000,
  expireAfterMs: 30 * 60_000,
  lateCheckIntervalMs: 60 * 60_000,
  lateCheckWindowMs: 24 * 60 * 60_000,
  grantRetryFirstMs: 1_000,
  grantRetryMaxMs: 5 * 60_000,
};

/** Doubling delay: `first`, `2 * first`, `4 * first`, … capped at `max`. */
export function backoffDelay(attempt: number, first: number, max: number): number {
  const exponent = Math.min(Math.max(attempt, 0), 30);
  return Math.min(first * 2 ** exponent, max);
}

/** True when a pending or cancelled purchase is old enough to be marked `expired`. */
export function isPastDeadline(purchase: StoredPurchase, now: number, schedule: CheckSchedule): boolean {
  return now >= purchase.createdAt + schedule.expireAfterMs;
}

/**
 * Returns the time of the next status check of an open purchase after a check
 * that found no payment, or null to stop polling. `checkAttempts` counts the checks so far
 * (a retry of the purchase resets it, which restarts the fast checks).
 *
 * Before the deadline the delay doubles up to `maxCheckIntervalMs`. After it,
 * the fast checks that are still short of the ceiling run out, then one check
 * per `lateCheckIntervalMs` until `lateCheckWindowMs` after the deadline.
 */
export function nextCheckAt(purchase: StoredPurchase, checkAttempts: number, now: number, schedule: CheckSchedule): number | null {
  const delay = backoffDelay(checkAttempts, schedule.firstCheckAfterMs, schedule.maxCheckIntervalMs);

  if (!isPastDeadline(purchase, now, schedule)) {
    return now + delay;
  }

  if (delay < schedule.maxCheckIntervalMs) {
    return now + delay;
  }

  const lateChecksEnd = purchase.createdAt + schedule.expireAfterMs + schedule.lateCheckWindowMs;
  if (now >= lateChecksEnd) {
    return null;
  }
  return Math.min(now + schedule.lateCheckIntervalMs, lateChecksEnd);
}

/** When a grant that failed `grantAttempts` times (this failure included) runs again. */
export function nextGrantAt(grantAttempts: number, now: number, schedule: CheckSchedule): number {
  return now + backoffDelay(grantAttempts - 1, schedule.grantRetryFirstMs, schedule.grantRetryMaxMs);
}
