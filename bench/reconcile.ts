// Row 7 of docs/BENCHMARKS.md: the start-up reconciliation of many open
// purchases. The benchmark seeds a sandbox data file with N pending intents
// and a kit SQLite file with the N matching pending purchases, through the
// stores' own insert methods and not timed. Then it starts the sandbox and a
// kit in child processes and times the kit from `createCodePay` until
// `codePay.reconciled` settles. Each open purchase costs one `GetStatus`
// and one store write that schedules its next check. Seeded purchases are
// not due for polling when the kit starts; once the reconciliation has
// checked one, its next check is due a few seconds later, so the polling
// loop runs beside the reconciliation and its calls are counted too.
//
// The kit caps the sequencer load by `polling.concurrency` (calls in
// flight, default 8), not by a rate; the run is repeated for each
// concurrency in `--concurrency` and reports the resulting GetStatus rate.
//
// Run with `npx tsx bench/reconcile.ts [--purchases=N] [--runs=N]`. Writes
// bench/results/reconcile.json.

import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

import { randomUUID } from 'node:crypto';
import { pino } from 'pino';

import { deriveIntent } from '../server/intent.js';
import { deriveIdempotencyKey, parseKeySecret } from '../server/keys.js';
import { SandboxStore } from '../server/sandbox/store.js';
import { openStore } from '../server/store/index.js';
import { parseFlags } from './lib/flags.js';
import { writeResults } from './lib/results.js';
import { BENCH_DESTINATION, BENCH_KEY_SECRET } from './lib/constants.js';
import { createBenchFolder, startKitChild, startSandboxChild } from './lib/setup.js';
import { loadAverage, machineFacts, round, summarize } from './lib/stats.js';

const flags = parseFlags({
  purchases: 100_000,
  runs: 3,
  /** `polling.concurrency` of the default configuration. */
  concurrency: 8,
  /** A second, higher `polling.concurrency` to show the effect of the cap; 0 skips it. */
  highConcurrency: 32,
});

/** Seeds both data files with `count` pending purchases and their intents. */
async function seed(sandboxFile: string, kitFile: string, count: number): Promise<void> {
  const keySecret = parseKeySecret(BENCH_KEY_SECRET, { sandbox: true });
  const now = Date.now();
  const rows: Array<{ i: number; createdAt: number; idempotencyKey: string; intent: ReturnType<typeof deriveIntent> }> = [];
  for (let i = 0; i < count; i++) {
    const createdAt = now - 60_000 - (i % 600) * 1_000;
    const idempotencyKey = deriveIdempotencyKey(keySecret, {
      gameId: 'bench-game',
      kind: 'consumable',
      itemId: 'gems',
      playerId: `bench-reconcile-${i % 5_000}`,
      attemptId: `reconcile-attempt-${i}`,
    });
    const intent = deriveIntent({ idempotencyKey, amount: 0.25, currency: 'usd', destination: BENCH_DESTINATION });
    rows.push({ i, createdAt, idempotencyKey, intent });
  }

  const sandboxStore = new SandboxStore(sandboxFile);
  sandboxStore.transaction(() => {
    for (const { createdAt, intent } of rows) {
      sandboxStore.insertIntent({
        intentId: intent.intentId,
        destination: BENCH_DESTINATION,
        currency: 'usd',
        amount: 0.25,
        status: 'pending',
        codeScanned: false,
        fees: [],
        createdAt,
        updatedAt: createdAt,
      });
    }
  });
  sandboxStore.close();

  const kitStore = await openStore({ sqlite: kitFile }, pino({ level: 'warn' }));
  // Not due for polling while the run lasts, so only the reconciliation calls GetStatus.
  const nextCheckAt = now + 60 * 60_000;
  const inserts = rows.map(({ i, createdAt, idempotencyKey, intent }) =>
    kitStore.insertPurchase({
      id: randomUUID(),
      idempotencyKey,
      playerId: `bench-reconcile-${i % 5_000}`,
      itemId: 'gems',
      kind: 'consumable',
      intentId: intent.intentId,
      clientSecret: intent.clientSecret,
      amount: 0.25,
      currency: 'usd',
      destination: BENCH_DESTINATION,
      attemptId: `reconcile-attempt-${i}`,
      createdAt,
      nextCheckAt,
    }),
  );
  await Promise.all(inserts);
  await kitStore.close();
}

async function reconcileOnce(seedFolder: string, concurrency: number) {
  const folder = createBenchFolder('reconcile-run');
  try {
    for (const name of ['sandbox.db', 'kit.db']) {
      copyFileSync(join(seedFolder, name), join(folder.path, name));
      for (const suffix of ['-wal', '-shm']) {
        if (existsSync(join(seedFolder, name + suffix))) {
          copyFileSync(join(seedFolder, name + suffix), join(folder.path, name + suffix));
        }
      }
    }
    const sandbox = await startSandboxChild(folder.path);
    try {
      await sandbox.request('resetStats');
      const kit = await startKitChild(sandbox, folder.path, { polling: { concurrency, batchSize: 100 } });
      try {
        const { ms } = await kit.request('reconciled');
        const seconds = Number(ms) / 1000;
        const stats = (await sandbox.request('stats')).stats as { rpc: Record<string, number> };
        const getStatusCalls = stats.rpc['MicroPayment.GetStatus'] ?? 0;
        return { seconds: round(seconds), getStatusCalls, getStatusPerSecond: round(getStatusCalls / seconds), kitRssMiB: round((await kit.rss()) / 2 ** 20) };
      } finally {
        await kit.stop();
      }
    } finally {
      await sandbox.stop();
    }
  } finally {
    folder.remove();
  }
}

async function main(): Promise<void> {
  const machine = machineFacts();
  const seedFolder = createBenchFolder('reconcile-seed');
  try {
    const seedStartedAt = performance.now();
    await seed(join(seedFolder.path, 'sandbox.db'), join(seedFolder.path, 'kit.db'), flags.purchases);
    const seedSeconds = round((performance.now() - seedStartedAt) / 1000);
    console.log(`seeded ${flags.purchases} open purchases in ${seedSeconds} s`);

    const byConcurrency: Record<string, unknown> = {};
    const concurrencies = flags.highConcurrency > 0 ? [flags.concurrency, flags.highConcurrency] : [flags.concurrency];
    for (const concurrency of concurrencies) {
      const runs = [];
      for (let run = 0; run < flags.runs; run++) {
        const result = await reconcileOnce(seedFolder.path, concurrency);
        console.log(`concurrency ${concurrency}, run ${run + 1}:`, result);
        runs.push(result);
      }
      byConcurrency[String(concurrency)] = {
        seconds: summarize(runs.map((run) => run.seconds)),
        getStatusPerSecond: summarize(runs.map((run) => run.getStatusPerSecond)),
        runs,
      };
    }

    const path = writeResults('reconcile', {
      command: `npx tsx bench/reconcile.ts ${process.argv.slice(2).join(' ')}`.trim(),
      machine,
      loadAverage1mAfter: loadAverage(),
      flags,
      seedSeconds,
      byConcurrency,
    });
    console.log(`Wrote ${path}`);
  } finally {
    seedFolder.remove();
  }
}

await main();
