// Row 4 of docs/BENCHMARKS.md: confirmation latency, from the wallet paying
// at the sandbox (`POST /control/intents/:id/pay`) to the player's socket
// receiving `purchase:updated` with state `granted`. Three paths alternate,
// one payment each per round:
//
// - kit, webhook: the kit registered its webhook route with the intent;
// - kit, polling only: no webhook, `GetStatus` every 1 s
//   (`polling.intervalMs`, `firstCheckAfterMs` and `maxCheckIntervalMs` all 1,000);
// - official examples: the browser is redirected to `/verify/:id` after the
//   payment and the server calls `paymentIntents.getStatus`. The figure is the
//   time from the payment to the verify response when the redirect starts at
//   once. `@code-wallet/elements` 2.0.4 itself waits 500 ms after
//   `intentSubmitted` before it redirects (`dist/elements.js`, `_a = 500`).
//   The message stream hop and the page load come on top, so the real path
//   is slower by at least 500 ms.
//
// Run with `npx tsx bench/confirmation.ts [--rounds=N]`. Writes
// bench/results/confirmation.json.

import { join } from 'node:path';

import type { Purchase } from '../protocol/index.js';
import type { BenchChild } from './lib/child.js';
import { parseFlags } from './lib/flags.js';
import { writeResults } from './lib/results.js';
import {
  connectPlayer,
  createBenchFolder,
  newAttemptId,
  postJson,
  startKitChild,
  startOfficialChild,
  startSandboxChild,
  type PlayerSocket,
} from './lib/setup.js';
import { loadAverage, machineFacts, percentile, round, sleep } from './lib/stats.js';

const flags = parseFlags({
  /** Payments per path. */
  rounds: 40,
});

/** The official client's fixed wait between `intentSubmitted` and the success redirect (ms). */
const ELEMENTS_REDIRECT_DELAY_MS = 500;

type Path = 'kitWebhook' | 'kitPolling' | 'official';
const PATHS: Path[] = ['kitWebhook', 'kitPolling', 'official'];

/** Milliseconds from the payment to the socket's `paid` update, per kit path, to split the confirmation from the grant. */
const paidSamples: Record<'kitWebhook' | 'kitPolling', number[]> = { kitWebhook: [], kitPolling: [] };

/** Webhook path only: ms from the payment to the webhook's arrival at the kit, and from arrival to the kit's 200. */
const webhookSplits = { untilArrival: [] as number[], kitHandling: [] as number[] };

const epochNow = () => performance.timeOrigin + performance.now();

/** Creates a purchase on a kit, pays it at the sandbox and returns the ms until the socket hears `granted`. */
async function kitConfirmation(sandbox: BenchChild, kit: BenchChild, socket: PlayerSocket, path: 'kitWebhook' | 'kitPolling'): Promise<number> {
  const ack = await socket.timeout(30_000).emitWithAck('purchase', { itemId: 'gems', attemptId: newAttemptId() });
  if (!ack.ok) {
    throw new Error(`purchase failed: ${ack.error.code}: ${ack.error.message}`);
  }
  const purchaseId = ack.purchase.id;

  let paidSeenAt: number | undefined;
  const granted = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off('purchase:updated', onUpdate);
      reject(new Error(`purchase ${purchaseId} was not granted within 30 s`));
    }, 30_000);
    const onUpdate = (purchase: Purchase) => {
      if (purchase.id === purchaseId && purchase.state === 'paid') {
        paidSeenAt ??= performance.now();
      }
      if (purchase.id === purchaseId && purchase.state === 'granted') {
        clearTimeout(timer);
        socket.off('purchase:updated', onUpdate);
        resolve(performance.now());
      }
    };
    socket.on('purchase:updated', onUpdate);
  });

  const paidAtEpoch = epochNow();
  const paidAt = performance.now();
  await postJson(`${String(sandbox.ready.url)}/control/intents/${ack.purchase.intentId}/pay`, {});
  const grantedAt = await granted;
  if (paidSeenAt !== undefined) {
    paidSamples[path].push(paidSeenAt - paidAt);
  }
  if (path === 'kitWebhook') {
    const { timings } = (await kit.request('webhookTimings')) as unknown as { timings: Array<{ arrivedAt: number; respondedAt: number }> };
    const timing = timings.at(-1);
    if (timing) {
      webhookSplits.untilArrival.push(timing.arrivedAt - paidAtEpoch);
      webhookSplits.kitHandling.push(timing.respondedAt - timing.arrivedAt);
    }
  }
  return grantedAt - paidAt;
}

/** Creates an intent the official way, pays it, then calls the verify route as the redirect would. */
async function officialConfirmation(sandbox: BenchChild, official: BenchChild): Promise<number> {
  const created = await postJson(`${String(official.ready.url)}/create-intent`, { idempotencyKey: newAttemptId() });
  const intentId = String(created.id);

  const paidAt = performance.now();
  await postJson(`${String(sandbox.ready.url)}/control/intents/${intentId}/pay`, {});
  const response = await fetch(`${String(official.ready.url)}/verify/${intentId}`);
  const body = (await response.json()) as { status?: { status?: string } };
  const verifiedAt = performance.now();
  if (body.status?.status !== 'confirmed') {
    throw new Error(`the verify route did not report the intent as paid: ${JSON.stringify(body)}`);
  }
  return verifiedAt - paidAt;
}

async function main(): Promise<void> {
  const machine = machineFacts();
  const folder = createBenchFolder('confirmation');
  const sandbox = await startSandboxChild(folder.path);
  const webhookFolder = join(folder.path, 'webhook');
  const pollingFolder = join(folder.path, 'polling');
  const kitWebhook = await startKitChild(sandbox, webhookFolder, { sqliteFile: join(webhookFolder, 'kit.db'), logFile: join(webhookFolder, 'kit.log') });
  const kitPolling = await startKitChild(sandbox, pollingFolder, {
    sqliteFile: join(pollingFolder, 'kit.db'),
    logFile: join(pollingFolder, 'kit.log'),
    webhook: false,
    polling: { intervalMs: 1_000, firstCheckAfterMs: 1_000, maxCheckIntervalMs: 1_000 },
  });
  const official = await startOfficialChild(sandbox);
  const webhookSocket = await connectPlayer(String(kitWebhook.ready.url), 'bench-confirm-webhook');
  const pollingSocket = await connectPlayer(String(kitPolling.ready.url), 'bench-confirm-polling');

  try {
    const samples: Record<Path, number[]> = { kitWebhook: [], kitPolling: [], official: [] };
    const measure: Record<Path, () => Promise<number>> = {
      kitWebhook: () => kitConfirmation(sandbox, kitWebhook, webhookSocket, 'kitWebhook'),
      kitPolling: () => kitConfirmation(sandbox, kitPolling, pollingSocket, 'kitPolling'),
      official: () => officialConfirmation(sandbox, official),
    };

    // Warm-up round, not recorded.
    for (const path of PATHS) {
      await measure[path]();
    }
    for (let round = 0; round < flags.rounds; round++) {
      const offset = round % PATHS.length;
      for (const path of [...PATHS.slice(offset), ...PATHS.slice(0, offset)]) {
        samples[path].push(await measure[path]());
        await sleep(20);
      }
    }

    const describe = (values: number[]) => ({
      p50Ms: round(percentile(values, 0.5)),
      p99Ms: round(percentile(values, 0.99)),
      minMs: round(Math.min(...values)),
      maxMs: round(Math.max(...values)),
      samples: values.length,
    });
    const results = {
      command: `npx tsx bench/confirmation.ts ${process.argv.slice(2).join(' ')}`.trim(),
      machine,
      loadAverage1mAfter: loadAverage(),
      flags,
      kitWebhook: describe(samples.kitWebhook),
      kitPolling: describe(samples.kitPolling),
      // The warm-up round's paid updates are in these too.
      kitWebhookUntilPaid: describe(paidSamples.kitWebhook),
      kitPollingUntilPaid: describe(paidSamples.kitPolling),
      webhookUntilArrivalAtKit: describe(webhookSplits.untilArrival),
      webhookHandlingInKit: describe(webhookSplits.kitHandling),
      officialVerifyAfterRedirect: describe(samples.official),
      officialWithElementsDelay: describe(samples.official.map((ms) => ms + ELEMENTS_REDIRECT_DELAY_MS)),
      pollingOverWebhookP50: round(percentile(samples.kitPolling, 0.5) / percentile(samples.kitWebhook, 0.5)),
      officialWithDelayOverWebhookP50: round((percentile(samples.official, 0.5) + ELEMENTS_REDIRECT_DELAY_MS) / percentile(samples.kitWebhook, 0.5)),
      rawMs: { kitWebhook: samples.kitWebhook.map((value) => round(value)), kitPolling: samples.kitPolling.map((value) => round(value)), official: samples.official.map((value) => round(value)) },
    };
    console.log(results.kitWebhook, results.kitPolling, results.officialVerifyAfterRedirect);
    console.log(`Wrote ${writeResults('confirmation', results)}`);
  } finally {
    webhookSocket.close();
    pollingSocket.close();
    await Promise.all([kitWebhook.stop(), kitPolling.stop(), official.stop()]);
    await sandbox.stop();
    folder.remove();
  }
}

await main();
