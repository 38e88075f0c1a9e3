// Row 6 of docs/BENCHMARKS.md: resident memory of one kit instance with many
// idle players connected. The kit runs in a child process, and its
// `process.memoryUsage().rss` is the figure. The sockets are socket.io
// clients over WebSocket in this process, one player each, connected a few
// hundred at a time. Each process needs one file descriptor per socket, so
// `ulimit -n` must exceed the socket count.
//
// Run with `npx tsx bench/idle-sockets.ts [--sockets=N] [--runs=N]`. Writes
// bench/results/idle-sockets.json.

import { parseFlags } from './lib/flags.js';
import { writeResults } from './lib/results.js';
import { connectPlayer, createBenchFolder, startKitChild, startSandboxChild, type PlayerSocket } from './lib/setup.js';
import { loadAverage, machineFacts, round, sleep, summarize } from './lib/stats.js';

const flags = parseFlags({
  sockets: 10_000,
  /** Connections opened at once. */
  connectBatch: 250,
  /** Times the sockets are connected and measured, each on a fresh kit process. */
  runs: 3,
  /** Idle time before the memory is read (s). */
  idleSeconds: 10,
});

const MIB = 2 ** 20;

async function measureOnce(run: number) {
  const folder = createBenchFolder('idle-sockets');
  const sandbox = await startSandboxChild(folder.path);
  const kit = await startKitChild(sandbox, folder.path);
  const sockets: PlayerSocket[] = [];
  try {
    await sleep(1_000);
    const rssEmpty = await kit.rss();

    const startedAt = performance.now();
    for (let first = 0; first < flags.sockets; first += flags.connectBatch) {
      const batch = [];
      for (let i = first; i < Math.min(flags.sockets, first + flags.connectBatch); i++) {
        batch.push(connectPlayer(String(kit.ready.url), `bench-idle-${run}-${i}`));
      }
      sockets.push(...(await Promise.all(batch)));
    }
    const connectSeconds = (performance.now() - startedAt) / 1000;

    await sleep(flags.idleSeconds * 1000);
    const rssIdle = await kit.rss();
    const connected = sockets.filter((socket) => socket.connected).length;

    return {
      connected,
      connectSeconds: round(connectSeconds),
      rssEmptyMiB: round(rssEmpty / MIB),
      rssIdleMiB: round(rssIdle / MIB),
      kibPerSocket: round((rssIdle - rssEmpty) / 1024 / flags.sockets),
    };
  } finally {
    for (const socket of sockets) {
      socket.close();
    }
    await kit.stop();
    await sandbox.stop();
    folder.remove();
  }
}

async function main(): Promise<void> {
  const machine = machineFacts();
  const runs = [];
  for (let run = 0; run < flags.runs; run++) {
    const result = await measureOnce(run);
    console.log(`run ${run + 1}:`, result);
    runs.push(result);
  }
  const path = writeResults('idle-sockets', {
    command: `npx tsx bench/idle-sockets.ts ${process.argv.slice(2).join(' ')}`.trim(),
    machine,
    loadAverage1mAfter: loadAverage(),
    flags,
    rssIdleMiB: summarize(runs.map((run) => run.rssIdleMiB)),
    rssEmptyMiB: summarize(runs.map((run) => run.rssEmptyMiB)),
    kibPerSocket: summarize(runs.map((run) => run.kibPerSocket)),
    connectSeconds: summarize(runs.map((run) => run.connectSeconds)),
    runs,
  });
  console.log(`Wrote ${path}`);
}

await main();
