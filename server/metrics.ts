// Prometheus metrics of one kit instance. Each kit gets its own prom-client
// Registry instead of the global one, so two kits in one process (or a kit and
// the game's own metrics) never register the same name twice.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PurchaseState } from '../protocol/index.js';

/** The sequencer RPCs the kit calls, as metric label values. */
export type SequencerMethod = 'sendMessage' | 'getStatus' | 'registerWebhook';

/** The outcome of one sequencer request. */
export type SequencerOutcome = 'ok' | 'rejected' | 'unavailable';

/** The confirmation path that moved a purchase to `paid`. */
export type ConfirmationSource = 'webhook' | 'poll' | 'revalidate' | 'reconcile' | 'stream';

export interface KitMetricsOptions {
  /** Prefix of every metric name. Default `code_pay_`. */
  prefix?: string;
  /** Also collect prom-client's process metrics (CPU, memory, event loop) into this registry. Default false. */
  collectDefaultMetrics?: boolean;
  /** Labels added to every metric, for example `{ instance: 'eu-1' }`. */
  defaultLabels?: Record<string, string>;
}

/** The metrics the kit's modules record; `registry` is what `GET /metrics` serves. */
export interface KitMetrics {
  readonly registry: Registry;

  /** Counts one purchase state transition; `from` is `none` for a newly created purchase. */
  recordTransition(from: PurchaseState | 'none', to: PurchaseState): void;
  /** Sets the number of purchases in each state, for example from a store count on each scrape. */
  setPurchasesByState(counts: Partial<Record<PurchaseState, number>>): void;
  /** Observes the time from a `purchase` request to the stored purchase, in seconds. */
  observeCreation(seconds: number): void;
  /** Observes the time from purchase creation to `paid`, in seconds, by confirmation path. */
  observeConfirmation(seconds: number, source: ConfirmationSource): void;
  /** Counts one rejected webhook by `WebhookRejectedError.reason` (or `mismatch` for a claim mismatch). */
  recordWebhookRejection(reason: string): void;
  /** Counts one sequencer request and observes its latency in seconds. */
  recordSequencerRequest(method: SequencerMethod, outcome: SequencerOutcome, seconds: number): void;
  /** Counts one grant handler failure (the purchase stays `paid` and is retried). */
  recordGrantFailure(itemId: string): void;
  /** Returns the registry's content in the Prometheus text format. */
  render(): Promise<string>;
  /** The content type to send with `render()`'s output. */
  readonly contentType: string;
}

/** Latency buckets in seconds for sequencer calls and purchase creation: 5 ms to 30 s. */
const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Buckets in seconds for confirmation: a player takes seconds to minutes to pay, late payments take hours. */
const CONFIRMATION_BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 86_400];

/** Creates the metrics of one kit instance in a new registry. */
export function createMetrics(options: KitMetricsOptions = {}): KitMetrics {
  const prefix = options.prefix ?? 'code_pay_';
  const registry = new Registry();
  if (options.defaultLabels !== undefined) {
    registry.setDefaultLabels(options.defaultLabels);
  }
  if (options.collectDefaultMetrics === true) {
    collectDefaultMetrics({ register: registry, prefix });
  }

  const transitions = new Counter({
    name: `${prefix}purchase_transitions_total`,
    help: 'Purchase state transitions, by previous state (none for a new purchase) and new state.',
    labelNames: ['from', 'to'] as const,
    registers: [registry],
  });
  const purchasesByState = new Gauge({
    name: `${prefix}purchases`,
    help: 'Purchases in each state, as last reported by the store.',
    labelNames: ['state'] as const,
    registers: [registry],
  });
  const creationSeconds = new Histogram({
    name: `${prefix}purchase_creation_seconds`,
    help: 'Time from a purchase request to the stored purchase, including the SendMessage call, in seconds.',
    buckets: REQUEST_BUCKETS,
    registers: [registry],
  });
  const confirmationSeconds = new Histogram({
    name: `${prefix}purchase_confirmation_seconds`,
    help: 'Time from purchase creation to paid, in seconds, by confirmation path.',
    labelNames: ['source'] as const,
    buckets: CONFIRMATION_BUCKETS,
    registers: [registry],
  });
  const webhookRejections = new Counter({
    name: `${prefix}webhook_rejections_total`,
    help: 'Webhook requests rejected with HTTP 400 or 413, by reason.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const sequencerRequests = new Counter({
    name: `${prefix}sequencer_requests_total`,
    help: 'Sequencer requests, by RPC method and outcome (ok, rejected, unavailable).',
    labelNames: ['method', 'outcome'] as const,
    registers: [registry],
  });
  const sequencerErrors = new Counter({
    name: `${prefix}sequencer_errors_total`,
    help: 'Sequencer requests that did not succeed, by RPC method and error code.',
    labelNames: ['method', 'code'] as const,
    registers: [registry],
  });
  const sequencerSeconds = new Histogram({
    name: `${prefix}sequencer_request_seconds`,
    help: 'Sequencer request latency in seconds, by RPC method.',
    labelNames: ['method'] as const,
    buckets: REQUEST_BUCKETS,
    registers: [registry],
  });
  const grantFailures = new Counter({
    name: `${prefix}grant_failures_total`,
    help: 'Grant handler calls that threw, by item id; the purchase stays paid and is retried.',
    labelNames: ['item'] as const,
    registers: [registry],
  });

  return {
    registry,
    contentType: registry.contentType,

    recordTransition(from, to) {
      transitions.inc({ from, to });
    },

    setPurchasesByState(counts) {
      for (const [state, count] of Object.entries(counts)) {
        purchasesByState.set({ state }, count);
      }
    },

    observeCreation(seconds) {
      creationSeconds.observe(seconds);
    },

    observeConfirmation(seconds, source) {
      confirmationSeconds.observe({ source }, seconds);
    },

    recordWebhookRejection(reason) {
      webhookRejections.inc({ reason });
    },

    recordSequencerRequest(method, outcome, seconds) {
      sequencerRequests.inc({ method, outcome });
      sequencerSeconds.observe({ method }, seconds);
      if (outcome !== 'ok') {
        sequencerErrors.inc({ method, code: `sequencer_${outcome}` });
      }
    },

    recordGrantFailure(itemId) {
      grantFailures.inc({ item: itemId });
    },

    render() {
      return registry.metrics();
    },
  };
}
