// The kit's Express routes: the webhook Code calls when an intent is paid,
// a health check and the Prometheus metrics.

import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Logger } from 'pino';

import { PURCHASE_STATES, type PurchaseState } from '../protocol/index.js';
import { crashPoint } from './crash-points.js';
import type { KitMetrics } from './metrics.js';
import type { PurchaseService } from './purchases.js';
import type { PurchaseStore, StoredPurchase } from './store/types.js';

export const WEBHOOK_PATH = '/code-pay/webhook';

/** Verified webhook claims, as far as the routes need them. */
export interface VerifiedClaims {
  intent: string;
}

export interface WebhookVerifierPort<Claims extends VerifiedClaims> {
  /** Returns the verified claims or throws an error with a `reason`. */
  verify(body: string, contentType: string | undefined): Promise<Claims>;
}

export interface RouterOptions<Claims extends VerifiedClaims> {
  purchases: PurchaseService;
  store: PurchaseStore;
  verifier: WebhookVerifierPort<Claims>;
  /** Returns why the claims do not match the pinned purchase (intent, destination, amount, currency), or undefined. */
  checkClaims: (claims: Claims, purchase: StoredPurchase) => string | undefined;
  metrics: KitMetrics;
  logger: Logger;
  /** Largest webhook body accepted (bytes); a compact JWS of Code's claims is well under 2 KB. */
  webhookBodyLimit: number;
}

/** Returns the stable `reason` of a webhook verifier error, or undefined for any other error. */
function rejectionReason(error: unknown): string | undefined {
  if (error instanceof Error && 'reason' in error && typeof error.reason === 'string') {
    return error.reason;
  }
  return undefined;
}

export function createRouter<Claims extends VerifiedClaims>(options: RouterOptions<Claims>): Router {
  const router = express.Router();
  const { logger, metrics } = options;

  // Read every content type as text, because the verifier checks the type
  // itself (rejecting a wrong one with a reason) and the signature covers the
  // raw text.
  const rawText = express.text({ type: () => true, limit: options.webhookBodyLimit });

  router.post(WEBHOOK_PATH, rawText, async (request: Request, response: Response) => {
    const body = typeof request.body === 'string' ? request.body : '';
    const contentType = request.get('content-type');

    let claims: Claims;
    try {
      claims = await options.verifier.verify(body, contentType);
    } catch (error) {
      const reason = rejectionReason(error);
      if (reason === undefined) {
        throw error;
      }
      metrics.recordWebhookRejection(reason);
      logger.warn({ reason, message: (error as Error).message, contentType }, 'webhook rejected');
      response.status(400).json({ error: { reason, message: (error as Error).message } });
      return;
    }
    crashPoint('after-webhook-verified');

    const outcome = await options.purchases.confirmWebhook(claims, (purchase) => options.checkClaims(claims, purchase));

    if (outcome.status === 'mismatch') {
      const reason = `mismatch_${outcome.reason}`;
      metrics.recordWebhookRejection(reason);
      logger.warn(
        { purchaseId: outcome.purchase.id, intentId: outcome.purchase.intentId, playerId: outcome.purchase.playerId, reason },
        'webhook claims do not match the pinned purchase; nothing changed',
      );
      response.status(400).json({
        error: { reason, message: `The webhook's ${outcome.reason} does not match the purchase for this intent.` },
      });
      return;
    }

    response.status(200).json({ ok: true });
  });

  router.get('/healthz', async (_request: Request, response: Response) => {
    try {
      await options.store.transaction(async (tx) => tx.query('SELECT 1 AS ok'));
      response.status(200).json({ ok: true });
    } catch (error) {
      logger.error({ err: error }, 'health check failed: the store did not respond');
      response.status(503).json({ ok: false, error: 'The purchase store did not respond.' });
    }
  });

  router.get('/metrics', async (_request: Request, response: Response) => {
    try {
      metrics.setPurchasesByState(await countPurchasesByState(options.store));
    } catch (error) {
      logger.warn({ err: error }, 'purchase counts by state could not be read; serving the other metrics');
    }
    response.set('Content-Type', metrics.contentType);
    response.send(await metrics.render());
  });

  // Errors of the body parser (too large, bad charset) and of the store.
  router.use((error: unknown, request: Request, response: Response, next: NextFunction) => {
    if (request.path !== WEBHOOK_PATH) {
      next(error);
      return;
    }

    const status = httpStatusOf(error);
    if (status !== undefined && status < 500) {
      const reason = status === 413 ? 'too_large' : 'malformed';
      metrics.recordWebhookRejection(reason);
      logger.warn({ reason, status }, 'webhook rejected');
      response.status(status).json({ error: { reason, message: `The webhook body could not be read (HTTP ${status}).` } });
      return;
    }

    // A store failure: respond 500 so Code retries the delivery later.
    logger.error({ err: error }, 'webhook processing failed; Code retries the delivery');
    response.status(500).json({ error: { reason: 'internal', message: 'The webhook could not be processed; it will be retried.' } });
  });

  return router;
}

/**
 * Counts the purchases in each state, with a zero for states without any.
 * NOTE: reads the store's purchases table directly, because the store
 * contract has no count method; the query runs unchanged on SQLite and
 * PostgreSQL.
 */
async function countPurchasesByState(store: PurchaseStore): Promise<Record<PurchaseState, number>> {
  const rows = await store.transaction((tx) =>
    tx.query<{ state: string; purchases: number | string }>('SELECT state, COUNT(*) AS purchases FROM code_pay_purchases GROUP BY state'),
  );

  const counts = Object.fromEntries(PURCHASE_STATES.map((state) => [state, 0])) as Record<PurchaseState, number>;
  for (const row of rows) {
    if ((PURCHASE_STATES as readonly string[]).includes(row.state)) {
      counts[row.state as PurchaseState] = Number(row.purchases);
    }
  }
  return counts;
}

function httpStatusOf(error: unknown): number | undefined {
  if (typeof error === 'object' && error !== null && 'status' in error && typeof error.status === 'number') {
    return error.status;
  }
  return undefined;
}
