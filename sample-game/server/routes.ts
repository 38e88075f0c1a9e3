// The game's own HTTP routes under /api: guest identities and the player's
// inventory. Errors respond with `{ error: { code, message } }` with the protocol's
// error codes and are logged once.

import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';

import type { ErrorCode } from '../../protocol/index.js';
import { SAMPLE_CATALOG } from '../shared/items.js';
import { GuestTokenError, type GuestAuthority } from './guest.js';
import { consumeItem, readInventory, type RunInTransaction } from './inventory.js';

/** Settings the game client reads from `GET /api/config` before it boots. */
export interface ClientConfig {
  /** The in-process sandbox's wallet page, when the server runs a sandbox. */
  sandbox: { walletUrl: string } | null;
}

export interface GameRouterOptions {
  guests: GuestAuthority;
  clientConfig: ClientConfig;
  transaction: RunInTransaction;
  logger: Logger;
  /** New guest identities allowed per client address per minute. */
  guestsPerMinute?: number;
}

/** An error response of a route; `status` is the HTTP status. */
class RouteError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RouteError';
  }
}

const guestRequestSchema = z.object({}).strict();

const consumeRequestSchema = z
  .object({
    itemId: z.string().min(1).max(64),
  })
  .strict();

const bearerSchema = z.string().regex(/^Bearer [A-Za-z0-9._-]{1,2048}$/);

const CONSUMABLE_IDS = new Set(SAMPLE_CATALOG.filter((item) => item.kind === 'consumable').map((item) => item.id));

export function createGameRouter(options: GameRouterOptions): Router {
  const { guests, transaction, logger } = options;
  const guestLimiter = createFixedWindowLimiter(options.guestsPerMinute ?? 30, 60_000);
  const router = express.Router();

  router.use(express.json({ limit: '1kb', strict: true }));

  router.get('/config', (_request, response) => {
    response.json(options.clientConfig);
  });

  router.post('/guest', async (request, response) => {
    if (!guestLimiter.allow(request.ip ?? 'unknown')) {
      throw new RouteError(429, 'rate_limited', 'Too many guest identities from this address; wait a minute and try again.');
    }
    parseBody(guestRequestSchema, request.body ?? {});

    const identity = await guests.issue();
    logger.info({ playerId: identity.playerId }, 'guest identity issued');
    response.status(201).json(identity);
  });

  router.get('/inventory', async (request, response) => {
    const playerId = await authenticateRequest(guests, request);
    response.json(await readInventory(transaction, playerId));
  });

  router.post('/inventory/consume', async (request, response) => {
    const playerId = await authenticateRequest(guests, request);
    const { itemId } = parseBody(consumeRequestSchema, request.body);
    if (!CONSUMABLE_IDS.has(itemId)) {
      throw new RouteError(400, 'unknown_item', `Item ${itemId} is not a consumable of this game; only ${[...CONSUMABLE_IDS].join(', ')} can be used.`);
    }

    const consumed = await consumeItem(transaction, playerId, itemId);
    if (!consumed) {
      throw new RouteError(409, 'not_found', `Player ${playerId} has no unused ${itemId} left; buy one in the shop first.`);
    }

    logger.info({ playerId, itemId }, 'consumable used');
    response.json(await readInventory(transaction, playerId));
  });

  router.use((_request: Request, _response: Response, next: NextFunction) => {
    next(new RouteError(404, 'not_found', 'No such API route; the game serves GET /api/config, POST /api/guest, GET /api/inventory and POST /api/inventory/consume.'));
  });

  router.use((error: unknown, request: Request, response: Response, _next: NextFunction) => {
    const routeError = toRouteError(error);
    const fields = { method: request.method, path: request.originalUrl, status: routeError.status, code: routeError.code };
    if (routeError.status >= 500) {
      logger.error({ ...fields, err: error }, 'API request failed');
    } else {
      logger.warn({ ...fields, reason: routeError.message }, 'API request rejected');
    }
    response.status(routeError.status).json({ error: { code: routeError.code, message: routeError.message } });
  });

  return router;
}

async function authenticateRequest(guests: GuestAuthority, request: Request): Promise<string> {
  const header = bearerSchema.safeParse(request.headers.authorization);
  if (!header.success) {
    throw new RouteError(401, 'unauthenticated', 'Missing or malformed Authorization header; send "Bearer <token>" with the token from POST /api/guest.');
  }
  return guests.verify(header.data.slice('Bearer '.length));
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'body';
    throw new RouteError(400, 'invalid_request', `Invalid request body at ${where}: ${issue?.message ?? 'does not match the schema'}.`);
  }
  return result.data;
}

function toRouteError(error: unknown): RouteError {
  if (error instanceof RouteError) {
    return error;
  }
  if (error instanceof GuestTokenError) {
    return new RouteError(401, 'unauthenticated', error.message);
  }
  if (isBodyParserError(error)) {
    const tooLarge = error.type === 'entity.too.large';
    return new RouteError(tooLarge ? 413 : 400, 'invalid_request', tooLarge ? 'Request body is larger than 1 KB.' : 'Request body is not valid JSON.');
  }
  return new RouteError(500, 'internal', 'The server failed to handle the request; try again, and check the server log if it persists.');
}

function isBodyParserError(error: unknown): error is Error & { type: string } {
  return error instanceof Error && typeof (error as { type?: unknown }).type === 'string';
}

/** Counts events per key in fixed windows; memory contains one entry per key seen in the current window. */
function createFixedWindowLimiter(limit: number, windowMs: number): { allow(key: string): boolean } {
  let windowStart = Date.now();
  let counts = new Map<string, number>();

  return {
    allow(key) {
      const now = Date.now();
      if (now - windowStart >= windowMs) {
        windowStart = now;
        counts = new Map();
      }

      const count = (counts.get(key) ?? 0) + 1;
      counts.set(key, count);
      return count <= limit;
    },
  };
}
