// The JSON and server-sent-events API behind the wallet page and the
// elements pages' sandbox buttons. It calls the SandboxContext directly, so
// it behaves like the control API's scan, pay and reject routes, and it is
// mounted next to the pages so that a page reaches it on its own origin.

import { Router, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { SandboxWalletError, type SandboxContext, type SandboxIntent, type SandboxIntentEvent } from './context.js';

/** Wallet actions and the context method that performs each one. */
const ACTIONS = {
  scan: (context: SandboxContext, intentId: string) => context.scan(intentId),
  pay: (context: SandboxContext, intentId: string) => context.pay(intentId),
  reject: (context: SandboxContext, intentId: string) => context.reject(intentId),
} satisfies Record<string, (context: SandboxContext, intentId: string) => SandboxIntent>;

type ActionName = keyof typeof ACTIONS;

/** A base58 Ed25519 public key: 32 to 44 characters of the Bitcoin alphabet. */
const INTENT_ID_PATTERN = /^[1-9A-HJ-NP-Za-km-z]{32,44}$/;

/** Milliseconds between comment lines that keep idle event streams open through proxies. */
const EVENT_STREAM_HEARTBEAT_MS = 15_000;

/**
 * Creates the wallet API router: `GET intents`, `GET intents/:intentId`, `GET events` (server-sent
 * events named `intent`, each a JSON SandboxIntentEvent) and
 * `POST intents/:intentId/scan|pay|reject`.
 */
export function createWalletRoutes(context: SandboxContext, logger: Logger): Router {
  const router = Router();

  router.get('/intents', (_request, response) => {
    response.json({ intents: context.listIntents() });
  });

  router.get('/intents/:intentId', (request, response) => {
    const intentId = String(request.params.intentId);
    const intent = INTENT_ID_PATTERN.test(intentId) ? context.getIntent(intentId) : undefined;
    if (!intent) {
      response.status(404).json({ error: { code: 'not_found', message: `intent ${intentId} not found in the sandbox` } });
      return;
    }
    response.json({ intent });
  });

  router.get('/events', (request, response) => {
    streamIntentEvents(context, request, response);
  });

  router.post('/intents/:intentId/:action', (request, response) => {
    runAction(context, logger, request, response);
  });

  return router;
}

function runAction(context: SandboxContext, logger: Logger, request: Request, response: Response): void {
  const intentId = String(request.params.intentId);
  const action = String(request.params.action);

  if (!Object.hasOwn(ACTIONS, action)) {
    sendError(response, logger, 404, 'not_found', `unknown wallet action "${action}"; use scan, pay or reject`, { intentId });
    return;
  }

  if (!INTENT_ID_PATTERN.test(intentId)) {
    sendError(response, logger, 400, 'invalid_request', 'invalid intent id: expected a base58 public key', { action });
    return;
  }

  try {
    const intent = ACTIONS[action as ActionName](context, intentId);
    logger.info({ intentId, action, status: intent.status }, 'wallet page action');
    response.json({ intent });
  } catch (error) {
    if (error instanceof SandboxWalletError) {
      const code = error.status === 404 ? 'not_found' : 'conflict';
      sendError(response, logger, error.status, code, error.message, { intentId, action });
      return;
    }

    logger.error({ err: error, intentId, action }, 'wallet page action failed');
    response.status(500).json({ error: { code: 'internal', message: `${action} failed: ${(error as Error).message}` } });
  }
}

function streamIntentEvents(context: SandboxContext, request: Request, response: Response): void {
  response.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  response.write(': connected\n\n');

  const unsubscribe = context.onIntentEvent((event: SandboxIntentEvent) => {
    response.write(`event: intent\ndata: ${JSON.stringify(event)}\n\n`);
  });

  const heartbeat = setInterval(() => response.write(': heartbeat\n\n'), EVENT_STREAM_HEARTBEAT_MS);
  heartbeat.unref();

  request.on('close', () => {
    clearInterval(heartbeat);
    unsubscribe();
  });
}

function sendError(
  response: Response,
  logger: Logger,
  status: number,
  code: string,
  message: string,
  ids: Record<string, string>,
): void {
  logger.warn({ ...ids, status, code }, `wallet page request rejected: ${message}`);
  response.status(status).json({ error: { code, message } });
}
