// Rows 2, 3 and 5 of docs/BENCHMARKS.md: new purchases per second and their
// acknowledgement latency at a fixed rate, retries of an existing purchase
// per second, and the duplicate storm. Two servers run in their own child
// processes in alternating batches: the kit (one instance, SQLite, socket
// protocol) and a server written the way the official Code SDK examples are
// (Express, `paymentIntents.create` per request, no store). They run first
// against the sandbox, then against a stub sequencer that checks nothing
// (bench/servers/stub-sequencer.ts), which shows the servers' own capacity
// when the sequencer is not the bottleneck. CPU per request is each server
// process's `process.cpuUsage()`.
//
// Run with `npx tsx bench/purchases.ts [--flag=value …]`; see `defaults`.
// Prints a summary and writes bench/results/purchases.json.

import type { PurchaseAck } from '../protocol/index.js';
import type { BenchChild } from './lib/child.js';
import { parseFlags } from './lib/flags.js';
import { closedLoop, openLoop } from './lib/load.js';
import { writeResults } from './lib/results.js';
import {
  connectPlayer,
  createBenchFolder,
  newAttemptId,
  postJson,
  startKitChild,
  startOfficialChild,
  startSandboxChild,
  startStubSequencerChild,
  type PlayerSocket,
} from './lib/setup.js';
import { loadAverage, machineFacts, percentile, round, sleep, summarize } from './lib/stats.js';

const defaults = {
  /** Alternating runs per comparison. */
  runs: 5,
  /** Length of one throughput batch (s); a batch also ends after `maxRequests`. */
  batchSeconds: 3,
  maxRequests: 20_000,
  /** Requests in flight in the throughput batches. */
  concurrency: 64,
  /** Player sockets of the kit side, each a different player. */
  sockets: 32,
  /** Rate of the latency runs, purchases per second. */
  rate: 500,
  /** Length of one latency run (s). */
  seconds: 4,
  /** Identical concurrent requests of one storm (row 5). */
  storm: 1000,
  /** Sockets of the storm's one player. */
  stormSockets: 100,
};
const flags = parseFlags(defaults);

type Side = 'kit' | 'official';
const SIDES: Side[] = ['kit', 'official'];

interface Servers {
  sequencer: BenchChild;
  kit: BenchChild;
  official: BenchChild;
  sockets: PlayerSocket[];
}

/** Sends one socket request and returns the acknowledgement; rejects on `ok: false`. */
async function purchaseOverSocket(socket: PlayerSocket, request: { itemId: string; attemptId?: string }): Promise<PurchaseAck & { ok: true }> {
  const ack = (await socket.timeout(60_000).emitWithAck('purchase', request)) as PurchaseAck;
  if (!ack.ok) {
    throw new Error(`${ack.error.code}: ${ack.error.message}`);
  }
  return ack;
}

function newPurchaseCall(side: Side, servers: Servers): (index: number) => Promise<void> {
  if (side === 'kit') {
    return async (index) => {
      await purchaseOverSocket(servers.sockets[index % servers.sockets.length], { itemId: 'gems', attemptId: newAttemptId() });
    };
  }
  const url = `${String(servers.official.ready.url)}/create-intent`;
  return async () => {
    await postJson(url, { idempotencyKey: newAttemptId() });
  };
}

function retryCall(side: Side, servers: Servers, officialKeys: string[]): (index: number) => Promise<void> {
  if (side === 'kit') {
    return async (index) => {
      await purchaseOverSocket(servers.sockets[index % servers.sockets.length], { itemId: 'laser' });
    };
  }
  const url = `${String(servers.official.ready.url)}/create-intent`;
  return async (index) => {
    await postJson(url, { idempotencyKey: officialKeys[index % officialKeys.length] });
  };
}

/** Orders the two sides for run `run`: kit first on even runs, the official server first on odd ones. */
function order(run: number): Side[] {
  return run % 2 === 0 ? ['kit', 'official'] : ['official', 'kit'];
}

interface ThroughputSamples {
  perSecond: number[];
  serverCpuMicros: number[];
  sequencerCpuMicros: number[];
  failures: number;
  firstError?: string;
}

function emptySamples(): ThroughputSamples {
  return { perSecond: [], serverCpuMicros: [], sequencerCpuMicros: [], failures: 0 };
}

/** Runs one throughput batch of `call` and records requests per second and CPU µs per request of the server and the sequencer. */
async function measureBatch(servers: Servers, side: Side, call: (index: number) => Promise<void>, samples: ThroughputSamples): Promise<void> {
  const server = servers[side];
  const serverCpuBefore = await server.cpuMicros();
  const sequencerCpuBefore = await servers.sequencer.cpuMicros();
  const result = await closedLoop(flags.maxRequests, flags.concurrency, call, flags.batchSeconds * 1000);
  const serverCpu = (await server.cpuMicros()) - serverCpuBefore;
  const sequencerCpu = (await servers.sequencer.cpuMicros()) - sequencerCpuBefore;

  samples.perSecond.push((result.completed / result.elapsedMs) * 1000);
  samples.serverCpuMicros.push(serverCpu / Math.max(1, result.completed));
  samples.sequencerCpuMicros.push(sequencerCpu / Math.max(1, result.completed));
  samples.failures += result.failures;
  samples.firstError ??= result.firstError;
  if (result.failures > 0) {
    console.error(`${side}: ${result.failures} failed requests, first: ${result.firstError}`);
  }
}

function summarizeThroughput(samples: Record<Side, ThroughputSamples>) {
  const side = (name: Side) => ({
    perSecond: summarize(samples[name].perSecond),
    serverCpuMicrosPerRequest: summarize(samples[name].serverCpuMicros),
    sequencerCpuMicrosPerRequest: summarize(samples[name].sequencerCpuMicros),
    failures: samples[name].failures,
    firstError: samples[name].firstError,
  });
  return {
    kit: side('kit'),
    official: side('official'),
    kitOverOfficialPerSecond: ratios(samples.kit.perSecond, samples.official.perSecond),
    officialOverKitServerCpu: ratios(samples.official.serverCpuMicros, samples.kit.serverCpuMicros),
  };
}

/** Runs rows 2 and 3 against one sequencer (the sandbox or the stub). */
async function compare(label: string, servers: Servers) {
  // Warm-up: JIT, connection pools and SQLite pages on both sides.
  for (const side of SIDES) {
    await closedLoop(300, flags.concurrency, newPurchaseCall(side, servers), 5_000);
  }

  const created: Record<Side, ThroughputSamples> = { kit: emptySamples(), official: emptySamples() };
  for (let run = 0; run < flags.runs; run++) {
    for (const side of order(run)) {
      await measureBatch(servers, side, newPurchaseCall(side, servers), created[side]);
      await sleep(300);
    }
  }
  const newPurchases = summarizeThroughput(created);
  console.log(`${label}: new purchases per second`, { kit: newPurchases.kit.perSecond.median, official: newPurchases.official.perSecond.median });

  const latency: Record<Side, { p50: number[]; p99: number[]; max: number[]; failures: number; skipped: number; firstError?: string }> = {
    kit: { p50: [], p99: [], max: [], failures: 0, skipped: 0 },
    official: { p50: [], p99: [], max: [], failures: 0, skipped: 0 },
  };
  const latencyRuns = Math.max(2, Math.ceil(flags.runs / 2) + 1);
  for (let run = 0; run < latencyRuns; run++) {
    for (const side of order(run)) {
      const result = await openLoop(flags.rate, flags.seconds * 1000, newPurchaseCall(side, servers));
      latency[side].failures += result.failures;
      latency[side].skipped += result.skipped;
      latency[side].firstError ??= result.firstError;
      latency[side].p50.push(percentile(result.latenciesMs, 0.5));
      latency[side].p99.push(percentile(result.latenciesMs, 0.99));
      latency[side].max.push(Math.max(...result.latenciesMs));
      await sleep(500);
    }
  }
  console.log(`${label}: acknowledgement p99 at ${flags.rate}/s (ms)`, { kit: latency.kit.p99.map((value) => round(value)), official: latency.official.p99.map((value) => round(value)) });

  // Each kit player owns one open purchase of the permanent item; the
  // official server gets the same number of fixed idempotency keys.
  const officialKeys = servers.sockets.map((_, i) => `bench-retry-${label}-${process.pid}-${i}`);
  await Promise.all(servers.sockets.map((socket) => purchaseOverSocket(socket, { itemId: 'laser' })));
  await Promise.all(officialKeys.map((idempotencyKey) => postJson(`${String(servers.official.ready.url)}/create-intent`, { idempotencyKey })));
  const retried: Record<Side, ThroughputSamples> = { kit: emptySamples(), official: emptySamples() };
  for (let run = 0; run < flags.runs; run++) {
    for (const side of order(run)) {
      await measureBatch(servers, side, retryCall(side, servers, officialKeys), retried[side]);
      await sleep(300);
    }
  }
  const retries = summarizeThroughput(retried);
  console.log(`${label}: retries per second`, { kit: retries.kit.perSecond.median, official: retries.official.perSecond.median });

  return {
    newPurchases,
    acknowledgementAtRate: {
      ratePerSecond: flags.rate,
      seconds: flags.seconds,
      // `skipped` counts requests not sent because a second's worth were already waiting: the side could not sustain the rate.
      kit: {
        p50Ms: summarize(latency.kit.p50),
        p99Ms: summarize(latency.kit.p99),
        maxMs: summarize(latency.kit.max),
        failures: latency.kit.failures,
        skipped: latency.kit.skipped,
        firstError: latency.kit.firstError,
      },
      official: {
        p50Ms: summarize(latency.official.p50),
        p99Ms: summarize(latency.official.p99),
        maxMs: summarize(latency.official.max),
        failures: latency.official.failures,
        skipped: latency.official.skipped,
        firstError: latency.official.firstError,
      },
      officialP99OverKitP99: ratios(latency.official.p99, latency.kit.p99),
    },
    retries,
  };
}

/** Row 5: one player, many sockets, one new attempt id per storm, every request sent at once. */
async function duplicateStorms(servers: Servers) {
  const stormSockets: PlayerSocket[] = [];
  try {
    for (let i = 0; i < flags.stormSockets; i++) {
      stormSockets.push(await connectPlayer(String(servers.kit.ready.url), 'bench-storm-player'));
    }
    const storms = [];
    for (let run = 0; run < flags.runs; run++) {
      const attemptId = newAttemptId();
      await servers.sequencer.request('resetStats');
      const startedAt = performance.now();
      const outcomes = await Promise.allSettled(
        Array.from({ length: flags.storm }, async (_, i) => {
          const ack = await purchaseOverSocket(stormSockets[i % stormSockets.length], { itemId: 'gems', attemptId });
          return { purchaseId: ack.purchase.id, ms: performance.now() - startedAt };
        }),
      );
      const stats = (await servers.sequencer.request('stats')).stats as { rpc: Record<string, number> };
      const acknowledged = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
      const failed = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [String(outcome.reason)] : []));
      const latencies = acknowledged.map((entry) => entry.ms);
      storms.push({
        sendMessages: stats.rpc['Messaging.SendMessage'] ?? 0,
        registerWebhooks: stats.rpc['MicroPayment.RegisterWebhook'] ?? 0,
        acknowledged: acknowledged.length,
        failed: failed.length,
        firstFailure: failed[0],
        distinctPurchases: new Set(acknowledged.map((entry) => entry.purchaseId)).size,
        p50Ms: round(percentile(latencies, 0.5)),
        p99Ms: round(percentile(latencies, 0.99)),
        maxMs: round(Math.max(...latencies)),
      });
      await sleep(300);
    }
    console.log('duplicate storms', storms);
    return { requests: flags.storm, sockets: flags.stormSockets, runs: storms, p99Ms: summarize(storms.map((storm) => storm.p99Ms)) };
  } finally {
    for (const socket of stormSockets) {
      socket.close();
    }
  }
}

async function withServers<T>(label: string, startSequencer: (folder: string) => Promise<BenchChild>, work: (servers: Servers) => Promise<T>): Promise<T> {
  const folder = createBenchFolder(`purchases-${label}`);
  const sequencer = await startSequencer(folder.path);
  const kit = await startKitChild(sequencer, folder.path);
  const official = await startOfficialChild(sequencer);
  const sockets: PlayerSocket[] = [];
  try {
    for (let i = 0; i < flags.sockets; i++) {
      sockets.push(await connectPlayer(String(kit.ready.url), `bench-player-${i}`));
    }
    return await work({ sequencer, kit, official, sockets });
  } finally {
    for (const socket of sockets) {
      socket.close();
    }
    await Promise.all([kit.stop(), official.stop()]);
    await sequencer.stop();
    folder.remove();
  }
}

async function main(): Promise<void> {
  const machine = machineFacts();
  const sandbox = await withServers('sandbox', startSandboxChild, async (servers) => ({
    ...(await compare('sandbox', servers)),
    duplicateStorm: await duplicateStorms(servers),
  }));
  const stub = await withServers('stub', () => startStubSequencerChild(), (servers) => compare('stub sequencer', servers));

  const path = writeResults('purchases', {
    command: `npx tsx bench/purchases.ts ${process.argv.slice(2).join(' ')}`.trim(),
    machine,
    loadAverage1mAfter: loadAverage(),
    flags,
    sandbox,
    stubSequencer: stub,
  });
  console.log(`Wrote ${path}`);
}

/** Median and range of the per-run ratios a ÷ b, pairing batches measured in the same run. */
function ratios(a: readonly number[], b: readonly number[]) {
  return summarize(a.map((value, run) => value / b[run]));
}

await main();
