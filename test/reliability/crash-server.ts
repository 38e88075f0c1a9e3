// A lean game server for the crash matrix: the kit on a SQLite file with an
// Express + socket.io server around it and a grant handler that writes one
// inventory row per grant. It starts in well under a second, which matters
// because the crash suite restarts it hundreds of times; the sample game
// server also builds its client and runs its own routes.
//
// Environment (all required except where noted):
//   CRASH_SERVER_PORT          fixed loopback port, so webhooks registered before a crash still arrive after the restart
//   CRASH_SERVER_DB            SQLite file, or postgres:// URL, of the kit and the inventory
//   CODE_SEQUENCER_URL         endpoint of the external sandbox, for example http://127.0.0.1:8081/v1
//   CODE_SEQUENCER_PUBLIC_KEY  the sandbox's webhook signing key
//   CODE_PAY_KEY_SECRET        key secret shared by every restart
//   CODE_PAY_CRASH_POINT, CODE_PAY_CRASH_PROBABILITY, CODE_PAY_CRASH_AFTER (optional): see server/crash-points.ts
//   CRASH_SERVER_WAIT (optional)  `stdin`: load every module, then wait for a line on stdin before opening
//                                 the store, so the harness can warm the next server while this one's predecessor runs
//
// The player id is the socket's auth token without its `player:` prefix.

import { createServer } from 'node:http';

import express from 'express';
import { pino } from 'pino';
import { Server as SocketServer } from 'socket.io';

import { createCodePay, type StoreTransaction, type StoredPurchase } from '../../server/index.js';
import { CRASH_CATALOG, CRASH_DESTINATION } from './crash-catalog.js';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    process.stderr.write(`crash-server: ${name} is missing\n`);
    process.exit(2);
  }
  return value;
}

/**
 * Writes one inventory row per grant. The table has no unique constraint on
 * the purchase id on purpose: a second grant of one purchase must show up as
 * a second row, not as a failed insert.
 */
async function grantItem(purchase: StoredPurchase, tx: StoreTransaction): Promise<void> {
  await tx.execute('INSERT INTO reliability_inventory (purchase_id, player_id, item_id, granted_at) VALUES ($1, $2, $3, $4)', [
    purchase.id,
    purchase.playerId,
    purchase.itemId,
    Date.now(),
  ]);
}

function storeConfig(database: string): { sqlite: string } | { postgres: string } {
  return /^postgres(ql)?:\/\//.test(database) ? { postgres: database } : { sqlite: database };
}

/** Resolves at the first line on stdin. */
function waitForStdinLine(): Promise<void> {
  return new Promise((resolve) => {
    const onData = (chunk: Buffer): void => {
      if (chunk.includes(10)) {
        process.stdin.off('data', onData);
        process.stdin.pause();
        resolve();
      }
    };
    process.stdin.on('data', onData);
    // The harness went away before starting this server.
    process.stdin.once('end', () => process.exit(0));
  });
}

async function main(): Promise<void> {
  if (process.env.CRASH_SERVER_WAIT === 'stdin') {
    await waitForStdinLine();
  }

  const port = Number(requireEnv('CRASH_SERVER_PORT'));
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' });

  const kit = await createCodePay({
    gameId: 'reliability-crash',
    catalog: CRASH_CATALOG,
    destination: CRASH_DESTINATION,
    keySecret: requireEnv('CODE_PAY_KEY_SECRET'),
    store: storeConfig(requireEnv('CRASH_SERVER_DB')),
    sequencer: { endpoint: requireEnv('CODE_SEQUENCER_URL'), publicKey: requireEnv('CODE_SEQUENCER_PUBLIC_KEY'), timeoutMs: 2_000 },
    sandbox: true,
    webhookUrl: `http://127.0.0.1:${port}/code-pay/webhook`,
    authenticate: (handshake) => {
      const token: unknown = handshake.auth.token;
      if (typeof token !== 'string' || !token.startsWith('player:')) {
        throw new Error('invalid token');
      }
      return token.slice('player:'.length);
    },
    grant: grantItem,
    logger,
    rateLimit: { burst: 1_000, perSecond: 1_000 },
    polling: {
      intervalMs: 50,
      firstCheckAfterMs: 100,
      maxCheckIntervalMs: 400,
      grantRetryFirstMs: 50,
      grantRetryMaxMs: 200,
    },
  });
  await kit.store.transaction(async (tx) => {
    await tx.execute(
      'CREATE TABLE IF NOT EXISTS reliability_inventory (purchase_id TEXT NOT NULL, player_id TEXT NOT NULL, item_id TEXT NOT NULL, granted_at BIGINT NOT NULL)',
    );
  });

  const app = express();
  app.use(kit.router());
  const server = createServer(app);
  const io = new SocketServer(server, { serveClient: false });
  kit.attach(io);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const cpu = process.cpuUsage();
  process.stdout.write(`crash-server ready http://127.0.0.1:${port} (start-up used ${Math.round((cpu.user + cpu.system) / 1000)} ms of CPU)\n`);

  const stop = (): void => {
    void kit.close().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`crash-server failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
