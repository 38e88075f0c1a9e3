// Webhook delivery: a queue in the data file that POSTs an EdDSA JWT to the
// registered URL when an intent is paid, and retries on Code's schedule until
// the receiver responds with HTTP 200.
import type { Logger } from 'pino';
import { microPaymentLimit } from '../../protocol/currency-limits.js';
import type { FaultInjector } from './faults.js';
import type { WebhookSigner } from './signing-key.js';
import type { StoredIntent, SandboxStore, WebhookRecord } from './store.js';

/**
 * Delays before the retries that follow a failed attempt, in milliseconds:
 * the first attempt goes out at once, then 1 s, 1 s, 15 s, 1 min, 15 min,
 * 1 h and 24 h, then Code gives up (code-server,
 * pkg/code/async/webhook/worker.go, `attemptToDelay`).
 */
export const WEBHOOK_RETRY_DELAYS_MS: readonly number[] = [
  1_000,
  1_000,
  15_000,
  60_000,
  15 * 60_000,
  60 * 60_000,
  24 * 60 * 60_000,
];

/** Attempts before a delivery is given up: the first one and one per retry delay. */
export const WEBHOOK_MAX_ATTEMPTS = WEBHOOK_RETRY_DELAYS_MS.length + 1;

/** Deliveries in flight at once; the rest wait in the queue. */
const MAX_CONCURRENT_DELIVERIES = 16;

/** Time a receiver has to respond to one attempt, Code's default webhook timeout (3 s). */
const WEBHOOK_TIMEOUT_MS = 3_000;

/** Kin has 5 decimal places: 1 kin is 100,000 quarks. */
const QUARKS_PER_KIN = 100_000n;

/**
 * The sandbox's simulated price of one kin in US dollars. Other fiat
 * currencies are priced by the ratio of their micro-payment minimum to USD's,
 * which Code sizes to roughly the same value.
 */
const SANDBOX_USD_PER_KIN = 0.00001;

/** Returns the simulated exchange rate (currency units per kin) for a fiat currency. */
function sandboxExchangeRate(currency: string): number {
  const limit = microPaymentLimit(currency);
  const usdLimit = microPaymentLimit('usd');
  if (limit === undefined || usdLimit === undefined) {
    return SANDBOX_USD_PER_KIN;
  }
  return SANDBOX_USD_PER_KIN * (limit.min / usdLimit.min);
}

/** The JWT claims Code sends for a submitted payment intent. */
export interface WebhookClaims {
  [claim: string]: unknown;
  intent: string;
  currency: string;
  amount: number;
  exchangeRate: number;
  quarks: number;
  fees: number;
  destination: string;
  state: 'SUBMITTED';
}

/** Builds the claims for a paid intent, using the request's exact exchange data when it has some. */
export function buildWebhookClaims(intent: StoredIntent): WebhookClaims {
  let exchangeRate: number;
  let quarks: bigint;
  if (intent.exchangeRate !== undefined && intent.quarks !== undefined) {
    exchangeRate = intent.exchangeRate;
    quarks = BigInt(intent.quarks);
  } else {
    exchangeRate = sandboxExchangeRate(intent.currency);
    quarks = BigInt(Math.round((intent.amount / exchangeRate) * Number(QUARKS_PER_KIN)));
  }

  const feeBasisPoints = intent.fees.reduce((total, fee) => total + fee.basisPoints, 0);
  const fees = (quarks * BigInt(feeBasisPoints)) / 10_000n;

  return {
    intent: intent.intentId,
    currency: intent.currency.toUpperCase(),
    amount: intent.amount,
    exchangeRate,
    quarks: Number(quarks),
    fees: Number(fees),
    destination: intent.destination,
    state: 'SUBMITTED',
  };
}

export interface WebhookDispatcherOptions {
  store: SandboxStore;
  signer: WebhookSigner;
  faults: FaultInjector;
  logger: Logger;
  /** Multiplies every retry delay; 0.001 turns the 24 h schedule into under 2 minutes. */
  timeScale: number;
  /** Called once per HTTP POST sent, for the call counters. */
  onDeliverySent: () => void;
}

/** Describes where a webhook goes without its path or query, which may carry a secret. */
function describeUrl(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'an unparsable URL';
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Delivers pending webhooks. One timer waits for the earliest due delivery.
 * Every due time is stored in the data file, so a restart picks the queue up
 * where it stopped.
 */
export class WebhookDispatcher {
  private readonly options: WebhookDispatcherOptions;
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly shutdown = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: WebhookDispatcherOptions) {
    this.options = options;
  }

  /** Schedules the first attempt for an intent just paid, if it has a registered webhook. */
  enqueue(intentId: string): void {
    const scheduled = this.options.store.scheduleWebhook(intentId, Date.now());
    if (scheduled) {
      this.options.logger.info({ intentId }, 'webhook delivery queued');
      this.wake();
    }
  }

  /** Starts the due deliveries and sets the timer for the next one; called on start and after each change. */
  wake(): void {
    if (this.closed) {
      return;
    }
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }

    const now = Date.now();
    const free = MAX_CONCURRENT_DELIVERIES - this.inFlight.size;
    if (free > 0) {
      // Attempts under way are still pending in the store, so read past them.
      const due = this.options.store.listDueWebhooks(now, free + this.inFlight.size);
      for (const record of due) {
        if (this.inFlight.size >= MAX_CONCURRENT_DELIVERIES) {
          break;
        }
        if (!this.inFlight.has(record.intentId)) {
          this.startAttempt(record);
        }
      }
    }

    // Deliveries left due wait for a running attempt to finish, which calls wake again.
    const nextDueAt = this.options.store.nextWebhookDueAfter(now);
    if (nextDueAt !== undefined) {
      this.timer = setTimeout(() => this.wake(), nextDueAt - now);
    }
  }

  /** Stops the timer and waits for attempts under way; pending deliveries stay queued in the data file. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
    }
    this.shutdown.abort();
    await Promise.allSettled([...this.inFlight.values()]);
  }

  private startAttempt(record: WebhookRecord): void {
    const attempt = this.attempt(record)
      .catch((error: unknown) => {
        this.options.logger.error({ intentId: record.intentId, err: error }, 'webhook attempt failed unexpectedly');
      })
      .finally(() => {
        this.inFlight.delete(record.intentId);
        this.wake();
      });
    this.inFlight.set(record.intentId, attempt);
  }

  private async attempt(record: WebhookRecord): Promise<void> {
    const { store, faults, logger } = this.options;
    const log = logger.child({ intentId: record.intentId, webhookHost: describeUrl(record.url) });

    await sleep(faults.webhookDelayMs(), this.shutdown.signal);
    if (this.closed) {
      return;
    }

    const intent = store.getIntent(record.intentId);
    if (intent === undefined) {
      log.error('webhook intent not found in the data file; giving up');
      store.recordWebhookAttempt(record.intentId, { state: 'failed', attempts: record.attempts, lastError: 'intent not found' }, Date.now());
      return;
    }

    let failure: string | undefined;
    if (faults.takeWebhookDrop()) {
      failure = 'dropped by fault injection';
    } else {
      const token = await this.options.signer.sign(buildWebhookClaims(intent));
      failure = await this.post(record.url, token);
      if (failure === undefined && faults.takeWebhookDuplicate()) {
        const duplicateFailure = await this.post(record.url, token);
        log.info({ duplicateFailure }, 'webhook delivered a second time by fault injection');
      }
    }

    if (this.closed && failure !== undefined) {
      // Shutting down aborted the request; the attempt stays due and runs after a restart.
      return;
    }
    this.recordOutcome(record, failure, log);
  }

  private recordOutcome(record: WebhookRecord, failure: string | undefined, log: Logger): void {
    const attempts = record.attempts + 1;
    const now = Date.now();

    if (failure === undefined) {
      this.options.store.recordWebhookAttempt(record.intentId, { state: 'delivered', attempts }, now);
      log.info({ attempts }, 'webhook delivered');
      return;
    }

    if (attempts >= WEBHOOK_MAX_ATTEMPTS) {
      this.options.store.recordWebhookAttempt(record.intentId, { state: 'failed', attempts, lastError: failure }, now);
      log.warn({ attempts, failure }, 'webhook delivery failed on the last attempt; giving up');
      return;
    }

    const delayMs = Math.round(WEBHOOK_RETRY_DELAYS_MS[attempts - 1]! * this.options.timeScale);
    const nextAttemptAt = now + delayMs;
    this.options.store.recordWebhookAttempt(record.intentId, { state: 'pending', attempts, nextAttemptAt, lastError: failure }, now);
    log.warn({ attempts, failure, retryInMs: delayMs }, 'webhook delivery failed; will retry');
  }

  /** POSTs the token; returns why the attempt failed, or undefined on HTTP 200. */
  private async post(url: string, token: string): Promise<string | undefined> {
    this.options.onDeliverySent();
    const timeout = AbortSignal.timeout(WEBHOOK_TIMEOUT_MS);
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/jwt' },
        body: token,
        signal: AbortSignal.any([timeout, this.shutdown.signal]),
        redirect: 'manual',
      });
      await response.body?.cancel();
      if (response.status !== 200) {
        return `receiver answered HTTP ${response.status}`;
      }
      return undefined;
    } catch (error) {
      if (timeout.aborted) {
        return `receiver did not answer within ${WEBHOOK_TIMEOUT_MS} ms`;
      }
      return `request failed: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
}
