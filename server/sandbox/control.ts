// The simulated wallet and test controls as JSON under `/control/`: list and
// inspect intents, scan, pay or decline one, read the ledger, the webhook
// queue, the signing key and the call counters, and inject faults.
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';
import { SandboxWalletError, type SandboxIntent } from './context.js';
import { faultsRequestSchema, type FaultInjector } from './faults.js';
import type { RpcStats } from './rpc.js';
import type { SandboxSequencer } from './sequencer.js';
import type { WebhookSigner } from './signing-key.js';
import type { SandboxStore } from './store.js';

export interface ControlRouterOptions {
  sequencer: SandboxSequencer;
  store: SandboxStore;
  signer: WebhookSigner;
  faults: FaultInjector;
  stats: RpcStats;
  logger: Logger;
}

const listIntentsQuerySchema = z
  .object({
    status: z.enum(['pending', 'scanned', 'paid', 'rejected']).optional(),
    limit: z.coerce.number().int().min(1).max(10_000).default(100),
  })
  .strict();

type ControlErrorCode = 'invalid_request' | 'not_found' | 'conflict';

function sendError(response: Response, status: number, code: ControlErrorCode, message: string, details?: unknown): void {
  response.status(status).json({ error: { code, message, ...(details === undefined ? {} : { details }) } });
}

/** Formats zod issues as `path: message` lines for a 400 response. */
function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`).join('; ');
}

export function createControlRouter(options: ControlRouterOptions): Router {
  const { sequencer, store, signer, faults, stats, logger } = options;
  const router = Router();
  router.use(express.json({ limit: '16kb' }));

  const walletAction = (action: (intentId: string) => SandboxIntent) => (request: Request, response: Response) => {
    const intentId = String(request.params.intentId);
    try {
      response.json(action(intentId));
    } catch (error) {
      if (error instanceof SandboxWalletError) {
        logger.info({ intentId, status: error.status }, `wallet action rejected: ${error.message}`);
        sendError(response, error.status, error.status === 404 ? 'not_found' : 'conflict', error.message, { intentId });
        return;
      }
      throw error;
    }
  };

  router.get('/intents', (request, response) => {
    const query = listIntentsQuerySchema.safeParse(request.query);
    if (!query.success) {
      sendError(response, 400, 'invalid_request', `Invalid query: ${describeIssues(query.error)}`);
      return;
    }
    response.json({ intents: sequencer.listIntents(query.data), total: store.countIntents() });
  });

  router.get('/intents/:intentId', (request, response) => {
    const intentId = String(request.params.intentId);
    const intent = store.getIntent(intentId);
    if (intent === undefined) {
      sendError(response, 404, 'not_found', `Intent ${intentId} not found.`, { intentId });
      return;
    }
    response.json({ ...intent, webhook: store.getWebhook(intentId) ?? null });
  });

  router.post('/intents/:intentId/scan', walletAction((intentId) => sequencer.scan(intentId)));
  router.post('/intents/:intentId/pay', walletAction((intentId) => sequencer.pay(intentId)));
  router.post('/intents/:intentId/reject', walletAction((intentId) => sequencer.reject(intentId)));

  router.get('/ledger', (_request, response) => {
    const entries = sequencer.listLedger();
    response.json({ entries, total: entries.length });
  });

  router.get('/webhooks', (_request, response) => {
    response.json({ webhooks: store.listWebhooks() });
  });

  router.get('/public-key', (_request, response) => {
    response.json({ publicKey: signer.publicKey, jwk: signer.publicJwk, algorithm: 'EdDSA' });
  });

  router.get('/faults', (_request, response) => {
    response.json(faults.current());
  });

  router.post('/faults', (request, response) => {
    const parsed = faultsRequestSchema.safeParse(request.body);
    if (!parsed.success) {
      logger.info({ issues: parsed.error.issues.length }, 'fault request rejected');
      sendError(response, 400, 'invalid_request', `Invalid faults: ${describeIssues(parsed.error)}`);
      return;
    }
    const active = faults.apply(parsed.data);
    logger.info({ faults: active }, 'faults set');
    response.json(active);
  });

  router.delete('/faults', (_request, response) => {
    faults.clear();
    logger.info('faults cleared');
    response.json(faults.current());
  });

  router.get('/stats', (_request, response) => {
    response.json(stats.snapshot());
  });

  router.delete('/stats', (_request, response) => {
    stats.reset();
    response.json(stats.snapshot());
  });

  router.use((request, response) => {
    sendError(response, 404, 'not_found', `No control endpoint ${request.method} ${request.baseUrl}${request.path}; see docs/SANDBOX.md.`);
  });

  router.use((error: unknown, _request: Request, response: Response, _next: NextFunction) => {
    const bodyError = error as { type?: string; status?: number; message?: string };
    if (bodyError.type === 'entity.parse.failed' || bodyError.type === 'entity.too.large') {
      logger.info({ type: bodyError.type }, 'control request body rejected');
      sendError(response, bodyError.status ?? 400, 'invalid_request', `Invalid JSON body: ${bodyError.message ?? 'unreadable'}`);
      return;
    }
    logger.error({ err: error }, 'control request failed');
    response.status(500).json({ error: { code: 'internal', message: 'The sandbox failed to handle the request; see its log.' } });
  });

  return router;
}
