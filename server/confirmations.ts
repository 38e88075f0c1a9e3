// The background work of the kit: polling the sequencer for open purchases
// whose check is due, retrying failed grants, and the start-up reconciliation
// that checks every open purchase once. Every path ends in the purchase
// service's idempotent transitions.
//
// Several kit instances on one database share the work through leases in the
// store: an instance claims a batch of due purchases for `leaseMs`, so each
// due check goes to one instance, and a dead instance's claims lapse and are
// taken over by the others.

import type { Logger } from 'pino';

import { crashPoint } from './crash-points.js';
import { CodePayError } from './errors.js';
import type { PurchaseService } from './purchases.js';
import type { Lease, PurchaseStore, StoredPurchase } from './store/types.js';

/** Pause between passes while due work is left over from a full batch (ms). */
const BACKLOG_PAUSE_MS = 50;

/** Most purchase ids `store.claimOpen` takes in one call, so reconciliation pages stay within it. */
const MAX_CLAIM_IDS = 1_000;

export interface ConfirmationLoopOptions {
  store: PurchaseStore;
  purchases: PurchaseService;
  logger: Logger;
  /** How often the loop looks for due status checks and grants (ms). */
  pollIntervalMs: number;
  /** Maximum concurrent GetStatus calls and grants. */
  concurrency: number;
  /** Purchases taken per look (and per reconciliation page). */
  batchSize: number;
  /** How long a claim on a purchase's status check or grant retry lasts (ms). */
  leaseMs: number;
  /** Names this instance in the leases it takes; unique per process. */
  instanceId: string;
  now?: () => number;
}

/** Runs `fn` over `items` with at most `limit` calls in flight; never rejects. */
export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next];
      next += 1;
      await fn(item).catch(() => undefined);
    }
  };
  const workers = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, () => worker());
  await Promise.all(workers);
}

export class ConfirmationLoop {
  private readonly options: ConfirmationLoopOptions;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private reconciliation: Promise<void> | undefined;
  private stopped = false;

  constructor(options: ConfirmationLoopOptions) {
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  /** Starts the reconciliation of every open purchase and the polling loop. Called once by `createCodePay`. */
  start(): void {
    this.reconciliation = this.reconcile();
    this.schedule();
  }

  /** Settles when the start-up reconciliation is over (it never rejects). */
  get reconciled(): Promise<void> {
    return this.reconciliation ?? Promise.resolve();
  }

  /** Stops the loop and waits for the tick and the reconciliation in flight. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    await this.running;
    await this.reconciliation;
  }

  /** Runs one pass over due status checks and due grants. Returns true when a batch was full, so more work may be due. */
  async tick(): Promise<boolean> {
    const checks = await this.pollDueChecks();
    const grants = await this.retryDueGrants();
    return checks >= this.options.batchSize || grants >= this.options.batchSize;
  }

  /**
   * Checks every open purchase once, page by page, whatever its schedule.
   * A purchase that another instance has claimed is left to that instance.
   */
  async reconcile(): Promise<void> {
    const { store, concurrency, logger } = this.options;
    const pageSize = Math.min(this.options.batchSize, MAX_CLAIM_IDS);
    let afterId: string | null = null;
    let checked = 0;
    let leftToOthers = 0;

    try {
      while (!this.stopped) {
        const page: StoredPurchase[] = await store.listOpen(afterId, pageSize);
        if (page.length === 0) {
          break;
        }
        const claimed = await store.claimOpen(
          page.map((purchase) => purchase.id),
          this.lease(),
        );
        await forEachLimited(claimed, concurrency, async (purchase) => {
          await this.poll(purchase, 'reconcile');
          crashPoint('during-reconciliation');
        });
        checked += claimed.length;
        leftToOthers += page.length - claimed.length;
        afterId = page[page.length - 1].id;
      }
      logger.info({ checked, leftToOthers }, 'start-up reconciliation checked the open purchases');
    } catch (error) {
      logger.error({ err: error, checked }, 'start-up reconciliation failed; polling still checks the open purchases');
    }
  }

  /**
   * Schedules the next pass: soon after a full batch, so a backlog drains,
   * otherwise after `pollIntervalMs`. The short pause keeps a store that keeps
   * failing from turning the loop into a busy loop.
   */
  private schedule(delayMs = this.options.pollIntervalMs): void {
    if (this.stopped) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.tick()
        .catch((error: unknown) => {
          this.options.logger.error({ err: error }, 'confirmation loop pass failed; trying again');
          return false;
        })
        .then((backlog) => {
          this.running = undefined;
          this.schedule(backlog ? Math.min(BACKLOG_PAUSE_MS, this.options.pollIntervalMs) : this.options.pollIntervalMs);
        });
    }, delayMs);
    this.timer.unref();
  }

  private async pollDueChecks(): Promise<number> {
    const { store, batchSize, concurrency } = this.options;
    const due = await store.claimChecksDue(this.lease(), batchSize);
    await forEachLimited(due, concurrency, (purchase) => this.poll(purchase, 'poll'));
    return due.length;
  }

  private async retryDueGrants(): Promise<number> {
    const { store, batchSize, concurrency, purchases, logger } = this.options;
    const due = await store.claimGrantsDue(this.lease(), batchSize);
    await forEachLimited(due, concurrency, async (purchase) => {
      if (this.stopped) {
        return;
      }
      try {
        await purchases.retryGrant(purchase.id);
      } catch (error) {
        logger.error({ purchaseId: purchase.id, intentId: purchase.intentId, playerId: purchase.playerId, err: error }, 'grant retry failed');
      }
    });
    return due.length;
  }

  private lease(): Lease {
    const now = this.now();
    return { owner: this.options.instanceId, now, expiresAt: now + this.options.leaseMs };
  }

  private async poll(purchase: StoredPurchase, source: 'poll' | 'reconcile'): Promise<void> {
    if (this.stopped) {
      return;
    }
    try {
      await this.options.purchases.pollPurchase(purchase, source);
    } catch (error) {
      const fields = { purchaseId: purchase.id, intentId: purchase.intentId, playerId: purchase.playerId, source };
      if (error instanceof CodePayError && error.code === 'sequencer_unavailable') {
        this.options.logger.warn({ ...fields, err: error }, 'status check failed; the purchase is checked again later');
      } else {
        this.options.logger.error({ ...fields, err: error }, 'status check failed');
      }
    }
  }
}
