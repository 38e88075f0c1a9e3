// The sample game's server: one Express app and one socket.io server on one
// port, carrying the game's own routes (guest identity, inventory), the
// backend kit (socket namespace, webhook, health, metrics) and the built game
// client. Unless an external sequencer is configured, the sandbox sequencer
// runs in the same process and sends its webhooks back over loopback.

import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

import { createAdapter } from '@socket.io/redis-adapter';
import express, { type Request, type Response, type NextFunction, type RequestHandler } from 'express';
import type { Logger } from 'pino';
import { createClient } from 'redis';
import { Server as SocketServer } from 'socket.io';

import { createCodePay } from '../../server/index.js';
import { startSandbox } from '../../server/sandbox/index.js';
import { SAMPLE_CATALOG } from '../shared/items.js';
import type { SampleGameConfig } from './env.js';
import { createGuestAuthority, loadTokenSecret, type GuestAuthority } from './guest.js';
import { grantItem, migrateInventory, type RunInTransaction } from './inventory.js';
import { createGameRouter, type ClientConfig } from './routes.js';
import { prepareDataDirectory } from './secrets.js';
import { serveGameClient } from './static.js';

export const GAME_ID = 'phaser-code-pay-sample-game';

export interface SampleServer {
  /** The game's URL, for example http://127.0.0.1:8080/. */
  url: string;
  /** The in-process sandbox's wallet page, when the sandbox runs here. */
  walletUrl: string | undefined;
  /** The in-process sandbox's base URL, when the sandbox runs here. */
  sandboxUrl: string | undefined;
  webhookUrl: string;
  /** Stops accepting connections, then closes the kit, the sandbox and the store; safe to call twice. */
  close(): Promise<void>;
}

type CodePay = Awaited<ReturnType<typeof createCodePay>>;
type Sandbox = Awaited<ReturnType<typeof startSandbox>>;

/** The part of a Redis client that shutdown uses. */
interface RedisConnection {
  readonly isOpen: boolean;
  close(): Promise<unknown>;
  destroy(): void;
}

/** The parts started so far, closed in reverse order of start. */
interface StartedParts {
  sandbox?: Sandbox;
  http?: { io: SocketServer; server: HttpServer };
  /** The publish and subscribe connections of socket.io's Redis adapter. */
  redis?: RedisConnection[];
  kit?: CodePay;
}

/**
 * Starts everything the game needs and resolves once `GET /healthz` returns
 * 200. On a failure part-way, the parts already started are closed again.
 */
export async function startSampleServer(config: SampleGameConfig, logger: Logger): Promise<SampleServer> {
  const parts: StartedParts = {};
  try {
    return await startParts(config, logger, parts);
  } catch (error) {
    await closeParts(parts, logger);
    throw error;
  }
}

async function startParts(config: SampleGameConfig, logger: Logger, parts: StartedParts): Promise<SampleServer> {
  await prepareDataDirectory(config.dataDirectory);
  const guests = createGuestAuthority(await loadTokenSecret(config.tokenSecret, config.dataDirectory));

  let sequencer = config.sequencer;
  if (sequencer === undefined) {
    parts.sandbox = await startInProcessSandbox(config, logger);
    sequencer = { endpoint: toLoopback(parts.sandbox.endpoint), publicKey: parts.sandbox.publicKey };
  }

  // The kit is created after the HTTP server listens, because its webhook URL
  // contains the port, which is only known then when PORT is 0. Until then
  // /healthz responds with 503.
  const app = express();
  app.disable('x-powered-by');
  app.use(delegateToKit(() => parts.kit));
  app.get('/healthz', (_request, response) => {
    response.status(503).json({ status: 'starting' });
  });
  const clientConfig: ClientConfig = {
    sandbox: parts.sandbox === undefined ? null : { walletUrl: toLoopback(parts.sandbox.walletUrl) },
  };
  app.use('/api', createGameRouter({ guests, clientConfig, transaction: (fn) => requireKit(parts.kit).store.transaction(fn), logger }));
  app.use(serveGameClient(logger));

  const server = createServer(app);
  const io = new SocketServer(server, { serveClient: false });
  if (config.redisUrl !== undefined) {
    parts.redis = await connectAdapter(io, config.redisUrl, logger);
  }
  await listen(server, config.host, config.port);
  parts.http = { io, server };

  const base = baseUrl(config.host, (server.address() as AddressInfo).port);
  const webhookUrl = config.webhookUrl ?? `${base}/code-pay/webhook`;

  const kit = await createCodePay({
    gameId: GAME_ID,
    catalog: [...SAMPLE_CATALOG],
    destination: config.destination,
    // When CODE_PAY_KEY_SECRET is unset, the kit generates a key secret and
    // keeps it next to the SQLite file. It allows that only with a sandbox.
    keySecret: config.keySecret,
    store: config.database,
    sequencer: { ...sequencer, timeoutMs: config.sequencerTimeoutMs },
    sandbox: parts.sandbox !== undefined ? true : undefined,
    webhookUrl,
    polling: config.polling,
    rateLimit: config.rateLimit,
    redis: config.redisUrl === undefined ? undefined : { url: config.redisUrl },
    authenticate: (handshake) => authenticateHandshake(guests, handshake),
    grant: (purchase, tx) => grantItem(purchase, tx),
    logger,
  });
  parts.kit = kit;
  await migrateInventory((fn) => kit.store.transaction(fn));
  kit.attach(io);

  const url = `${base}/`;
  logger.info(
    { url, webhookUrl, sequencer: sequencer.endpoint, sandbox: parts.sandbox !== undefined, redis: config.redisUrl !== undefined },
    'sample game server ready',
  );

  let closing: Promise<void> | undefined;
  return {
    url,
    walletUrl: parts.sandbox && toLoopback(parts.sandbox.walletUrl),
    sandboxUrl: parts.sandbox && toLoopback(parts.sandbox.url),
    webhookUrl,
    close() {
      closing ??= closeParts(parts, logger);
      return closing;
    },
  };
}

/**
 * Stops new connections first, then the kit (which drains its work and closes
 * the store), then the Redis adapter's connections and the sandbox.
 */
async function closeParts(parts: StartedParts, logger: Logger): Promise<void> {
  const { http, kit, redis, sandbox } = parts;
  if (http !== undefined) {
    await closeQuietly('http', () => closeHttp(http.io, http.server), logger);
  }
  if (kit !== undefined) {
    await closeQuietly('kit', () => kit.close(), logger);
  }
  for (const client of redis ?? []) {
    await closeQuietly('redis', () => closeRedis(client), logger);
  }
  if (sandbox !== undefined) {
    await closeQuietly('sandbox', () => sandbox.close(), logger);
  }
}

async function closeQuietly(part: string, close: () => Promise<void>, logger: Logger): Promise<void> {
  try {
    await close();
  } catch (error) {
    logger.error({ err: error, part }, 'failed to close a part of the sample server');
  }
}

/**
 * Connects socket.io's Redis adapter, so `purchase:updated` sent on one
 * instance reaches the player's sockets on every instance.
 */
async function connectAdapter(io: SocketServer, redisUrl: string, logger: Logger): Promise<RedisConnection[]> {
  const publisher = createClient({ url: redisUrl });
  const subscriber = publisher.duplicate();
  const target = new URL(redisUrl);
  target.password = '';
  for (const client of [publisher, subscriber]) {
    client.on('error', (error: unknown) => logger.warn({ err: error, redis: target.toString() }, 'Redis connection of the socket.io adapter failed'));
  }

  try {
    await Promise.all([publisher.connect(), subscriber.connect()]);
  } catch (error) {
    publisher.destroy();
    subscriber.destroy();
    throw new Error(`Cannot connect to Redis at ${target.toString()}: ${(error as Error).message}. Check CODE_PAY_REDIS_URL.`, { cause: error });
  }
  io.adapter(createAdapter(publisher, subscriber, { key: `socket.io:${GAME_ID}` }));
  return [publisher, subscriber];
}

async function closeRedis(client: RedisConnection): Promise<void> {
  if (client.isOpen) {
    await client.close();
  } else {
    client.destroy();
  }
}

async function startInProcessSandbox(config: SampleGameConfig, logger: Logger): Promise<Sandbox> {
  try {
    return await startSandbox({
      host: config.host,
      port: config.sandboxPort,
      dataFile: path.join(config.dataDirectory, 'sandbox.db'),
      logger,
    });
  } catch (error) {
    throw new Error(
      `The sandbox sequencer failed to start on ${config.host}:${config.sandboxPort}: ${(error as Error).message} ` +
        'Set SANDBOX_PORT to a free port, or 0 for any free port.',
      { cause: error },
    );
  }
}

/** Resolves the player id from the socket handshake's `auth.token`; throws for a missing or invalid token. */
async function authenticateHandshake(guests: GuestAuthority, handshake: { auth?: unknown }): Promise<string> {
  const auth = handshake.auth;
  const token = typeof auth === 'object' && auth !== null ? (auth as Record<string, unknown>).token : undefined;
  return guests.verify(token);
}

/** Passes requests to the kit's router once the kit exists; before that, to the routes after this one. */
function delegateToKit(current: () => CodePay | undefined): RequestHandler {
  let router: RequestHandler | undefined;
  return (request: Request, response: Response, next: NextFunction) => {
    const kit = current();
    if (kit === undefined) {
      next();
      return;
    }
    router ??= kit.router();
    router(request, response, next);
  };
}

function requireKit(codePay: CodePay | undefined): CodePay {
  if (codePay === undefined) {
    throw new Error('The sample game server is still starting; try again in a moment.');
  }
  return codePay;
}

function listen(server: HttpServer, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      const hint = error.code === 'EADDRINUSE' ? 'Set PORT to a free port, or 0 for any free port.' : 'Check HOST and PORT.';
      reject(new Error(`The game server failed to listen on ${host}:${port}: ${error.message}. ${hint}`, { cause: error }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** Closes socket.io (which closes the HTTP server) and drops idle keep-alive connections. */
async function closeHttp(io: SocketServer, httpServer: HttpServer): Promise<void> {
  const closed = new Promise<void>((resolve) => {
    io.close(() => resolve());
  });
  httpServer.closeIdleConnections();
  await closed;
}

/**
 * Builds the server's base URL. A wildcard host becomes loopback, so the printed URL
 * opens on this machine and the sandbox's webhooks stay on it.
 */
function baseUrl(host: string, port: number): string {
  let reachable = host;
  if (host === '0.0.0.0') {
    reachable = '127.0.0.1';
  } else if (host === '::') {
    reachable = '::1';
  }
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

/** Rewrites a URL on a wildcard host (0.0.0.0 or ::) to the matching loopback address. */
function toLoopback(url: string): string {
  const parsed = new URL(url);
  if (parsed.hostname === '0.0.0.0') {
    parsed.hostname = '127.0.0.1';
  } else if (parsed.hostname === '[::]') {
    parsed.hostname = '[::1]';
  }
  return parsed.toString().replace(/\/$/, '');
}
