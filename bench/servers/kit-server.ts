// Child process: one instance of the kit (SQLite store) behind Express and
// socket.io on a loopback port, for the benchmarks. Each socket's auth token
// is its player id. The grant handler writes one inventory row in the grant's
// transaction, as a game would.
//
// Config: see KitChildConfig. Requests: `rss`, `reconciled` (waits for the
// start-up reconciliation and returns how long it took), `close`.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import express from 'express';
import { pino } from 'pino';
import { Server } from 'socket.io';

import { createCodePay } from '../../server/index.js';
import { childConfig, serveParent } from '../lib/child.js';
import { BENCH_KEY_SECRET } from '../lib/constants.js';

export interface KitChildConfig {
  endpoint: string;
  publicKey: string;
  destination: string;
  sqliteFile: string;
  logFile: string;
  /** Registers the webhook route with each new intent when true; polling and re-validation only when false. */
  webhook: boolean;
  polling?: { intervalMs?: number; concurrency?: number; batchSize?: number; firstCheckAfterMs?: number; maxCheckIntervalMs?: number };
  rateLimit?: { burst: number; perSecond: number };
  maxConnectionsPerAddress?: number;
  /** Folder of static files served at `/`, for the browser benchmark's page. */
  staticDir?: string;
}

const config = childConfig<KitChildConfig>();
// Every line goes to the log file; errors also go to stderr, so a failed benchmark shows the kit's reason.
const logger = pino(
  { level: 'info' },
  pino.multistream([
    { level: 'info', stream: pino.destination({ dest: config.logFile, sync: false, mkdir: true }) },
    { level: 'error', stream: pino.destination(2) },
  ]),
);

try {
  const app = express();
  const http = createServer(app);
  const io = new Server(http, { serveClient: false });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

  const startedAt = performance.now();
  const codePay = await createCodePay({
    gameId: 'bench-game',
    catalog: [
      { id: 'gems', kind: 'consumable', name: '10 gems', amount: 0.25, currency: 'usd' },
      { id: 'laser', kind: 'permanent', name: 'Laser cannon', amount: 0.5, currency: 'usd' },
    ],
    destination: config.destination,
    keySecret: BENCH_KEY_SECRET,
    store: { sqlite: config.sqliteFile },
    sequencer: { endpoint: config.endpoint, publicKey: config.publicKey },
    webhookUrl: config.webhook ? `${url}/code-pay/webhook` : undefined,
    authenticate: (handshake) => String((handshake.auth as { token?: unknown }).token ?? ''),
    grant: async (purchase, tx) => {
      await tx.execute('INSERT INTO bench_inventory (player_id, item_id, purchase_id) VALUES ($1, $2, $3)', [
        purchase.playerId,
        purchase.itemId,
        purchase.id,
      ]);
    },
    logger,
    polling: config.polling,
    rateLimit: config.rateLimit,
    maxConnectionsPerAddress: config.maxConnectionsPerAddress,
  });
  const reconciled = codePay.reconciled.then(() => performance.now() - startedAt);

  await codePay.store.transaction((tx) =>
    tx.execute('CREATE TABLE IF NOT EXISTS bench_inventory (player_id TEXT, item_id TEXT, purchase_id TEXT PRIMARY KEY)'),
  );
  codePay.attach(io);

  // Arrival and response times of each webhook POST (ms since the Unix epoch, sub-millisecond),
  // so the confirmation benchmark can split its latency between the sandbox and the kit.
  const webhookTimings: Array<{ arrivedAt: number; respondedAt: number; status: number }> = [];
  const epochNow = () => performance.timeOrigin + performance.now();
  app.use('/code-pay/webhook', (_request, response, next) => {
    const arrivedAt = epochNow();
    response.on('finish', () => webhookTimings.push({ arrivedAt, respondedAt: epochNow(), status: response.statusCode }));
    next();
  });
  app.use(codePay.router());
  if (config.staticDir) {
    // Cross-origin isolation gives the page's performance.now() 5 µs resolution instead of 100 µs.
    app.use(
      express.static(config.staticDir, {
        setHeaders: (response) => {
          response.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
          response.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
        },
      }),
    );
  }

  serveParent({
    rss: () => ({ rss: process.memoryUsage().rss }),
    cpu: () => ({ cpu: process.cpuUsage() }),
    reconciled: async () => ({ ms: await reconciled }),
    webhookTimings: () => ({ timings: webhookTimings.splice(0) }),
    close: async () => {
      await codePay.close();
      io.close();
      http.closeAllConnections();
      logger.flush();
      setImmediate(() => process.exit(0));
      return {};
    },
  });

  process.send?.({ type: 'ready', url, rss: process.memoryUsage().rss });
} catch (error) {
  process.send?.({ type: 'failed', error: String((error as Error).stack ?? error) });
  process.exit(1);
}
