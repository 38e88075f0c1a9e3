// A second process for the SQLite store tests: opens the store on the given
// file and runs one action, so tests can race two processes on one database.
// Usage: node --import tsx test/store-sqlite-worker.ts '<json task>'

import { once } from 'node:events';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { openStore } from '../server/store/index.js';
import type { NewPurchase } from '../server/store/types.js';

interface WorkerTask {
  file: string;
  /** Wall-clock time (ms) at which to start, so that processes start together. */
  startAt: number;
  action: 'open' | 'insert';
  purchase?: NewPurchase;
  count?: number;
  /** After opening the store, print a `ready` line and wait for a line on stdin before the action. */
  waitForGo?: boolean;
}

async function waitUntil(time: number): Promise<void> {
  const delay = time - Date.now();
  if (delay > 0) {
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

async function main(): Promise<void> {
  const task = JSON.parse(process.argv[2]) as WorkerTask;
  await waitUntil(task.startAt);

  const store = await openStore({ sqlite: task.file }, pino({ level: 'silent' }));
  try {
    if (task.waitForGo === true) {
      process.stdout.write('ready\n');
      const lines = createInterface({ input: process.stdin });
      await once(lines, 'line');
      lines.close();
      process.stdin.destroy();
    }

    if (task.action === 'insert' && task.purchase !== undefined) {
      const purchase = task.purchase;
      const results = await Promise.all(
        Array.from({ length: task.count ?? 1 }, (_, index) => store.insertPurchase({ ...purchase, id: `${purchase.id}-${process.pid}-${index}` })),
      );
      const created = results.filter((result) => result.created).length;
      const ids = [...new Set(results.map((result) => result.purchase.id))];
      process.stdout.write(JSON.stringify({ created, ids }));
    } else {
      process.stdout.write(JSON.stringify({ opened: true }));
    }
  } finally {
    await store.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
