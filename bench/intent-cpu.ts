// CPU cost per new purchase of deriving the idempotency key, the intent id
// and the signed SendMessageRequest: the kit (server/intent.ts, with each
// Ed25519 backend) against @code-wallet/intents on the same inputs.
//
// Run with `npx tsx bench/intent-cpu.ts [runs] [purchasesPerRun]`. Each run
// measures one batch per implementation, in an order that rotates between
// runs, with process.cpuUsage() (user + system time of this process). Every
// purchase gets a new attempt id, so nothing is cached between purchases.
// Prints a table and writes bench/results/intent-cpu.json.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { PaymentRequestIntent } from '@code-wallet/intents';

import { type Ed25519Backend, ed25519Selection, loadSodiumEd25519Backend, nobleEd25519Backend } from '../server/ed25519.js';
import { deriveIntent } from '../server/intent.js';
import { deriveIdempotencyKey, generateKeySecret } from '../server/keys.js';

const runs = Number(process.argv[2] ?? 9);
const purchasesPerRun = Number(process.argv[3] ?? 2000);
const warmUpPurchases = 500;

const keySecret = generateKeySecret();
const destination = 'E8otxw1CVX9bfyddKu3ZB3BVLa4VVF9J7CTPdnUwT9jR';
const prices: Array<{ amount: number; currency: string }> = [
  { amount: 0.25, currency: 'usd' },
  { amount: 0.29, currency: 'eur' },
  { amount: 50, currency: 'jpy' },
  { amount: 5000, currency: 'kin' },
];

let purchaseCounter = 0;

/** Returns the inputs of the next purchase: a consumable with a new attempt id. */
function nextPurchase() {
  purchaseCounter++;
  const price = prices[purchaseCounter % prices.length];
  return {
    scope: {
      gameId: 'bench-game',
      kind: 'consumable' as const,
      itemId: 'gems',
      playerId: `player-${purchaseCounter % 97}`,
      attemptId: `attempt-${purchaseCounter}`,
    },
    ...price,
  };
}

interface Implementation {
  name: string;
  /** Creates one purchase's key, intent id and SendMessageRequest bytes, and returns their total length as a checksum. */
  purchase(): Promise<number> | number;
}

function kitImplementation(name: string, backend: Ed25519Backend): Implementation {
  return {
    name,
    purchase() {
      const { scope, amount, currency } = nextPurchase();
      const idempotencyKey = deriveIdempotencyKey(keySecret, scope);
      const intent = deriveIntent({ idempotencyKey, amount, currency, destination }, { ed25519: backend });
      return intent.sendMessageRequest.length + intent.intentId.length;
    },
  };
}

const sdkImplementation: Implementation = {
  name: '@code-wallet/intents 1.1',
  async purchase() {
    const { scope, amount, currency } = nextPurchase();
    const idempotencyKey = deriveIdempotencyKey(keySecret, scope);
    const intent = new PaymentRequestIntent({ idempotencyKey, amount, currency, destination, mode: 'payment' } as never);
    const request = await intent.getSendMessageRequestProto();
    return request.toBinary().length + intent.getIntentId().length;
  },
};

const sodium = loadSodiumEd25519Backend();
const implementations: Implementation[] = [
  kitImplementation('kit, sodium-native', sodium),
  kitImplementation('kit, noble (JS fallback)', nobleEd25519Backend),
  sdkImplementation,
];

/** Returns the CPU microseconds per purchase of one batch. */
async function measureBatch(implementation: Implementation, count: number): Promise<number> {
  let checksum = 0;
  const start = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    checksum += await implementation.purchase();
  }
  const used = process.cpuUsage(start);
  if (checksum === 0) {
    throw new Error(`${implementation.name} produced no output`);
  }
  return (used.user + used.system) / count;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function checkIdentity(): void {
  const idempotencyKey = deriveIdempotencyKey(keySecret, nextPurchase().scope);
  const request = { idempotencyKey, amount: 0.29, currency: 'usd', destination };
  const kit = deriveIntent(request, { ed25519: sodium });
  const sdk = new PaymentRequestIntent({ ...request, mode: 'payment' } as never);
  if (kit.intentId !== sdk.getIntentId()) {
    throw new Error('The kit and the SDK derived different intent ids; fix that before timing them.');
  }
}

async function main(): Promise<void> {
  checkIdentity();
  const loadBefore = loadavg()[0];

  for (const implementation of implementations) {
    await measureBatch(implementation, warmUpPurchases);
  }

  const samples = new Map<string, number[]>(implementations.map((implementation) => [implementation.name, []]));
  for (let run = 0; run < runs; run++) {
    const offset = run % implementations.length;
    const order = [...implementations.slice(offset), ...implementations.slice(0, offset)];
    for (const implementation of order) {
      samples.get(implementation.name)!.push(await measureBatch(implementation, purchasesPerRun));
    }
  }

  const sdkSamples = samples.get(sdkImplementation.name)!;
  const sdkMedian = median(sdkSamples);
  const rows = implementations.map((implementation) => {
    const values = samples.get(implementation.name)!;
    const medianMicros = median(values);
    // The ratio within each run pairs batches measured under the same machine load.
    const pairedRatios = values.map((value, run) => sdkSamples[run] / value);
    return {
      implementation: implementation.name,
      medianMicrosPerPurchase: round(medianMicros),
      minMicrosPerPurchase: round(Math.min(...values)),
      maxMicrosPerPurchase: round(Math.max(...values)),
      spreadPercent: round(((Math.max(...values) - Math.min(...values)) / medianMicros) * 100),
      sdkOverThis: round(sdkMedian / medianMicros),
      sdkOverThisPairedMedian: round(median(pairedRatios)),
      sdkOverThisPairedMin: round(Math.min(...pairedRatios)),
      samplesMicrosPerPurchase: values.map(round),
    };
  });

  const loadAfter = loadavg()[0];
  console.log(`Node ${process.version}, ${cpus().length} CPUs (${cpuModel()}), ed25519 default: ${ed25519Selection.backend}`);
  console.log(`${runs} runs of ${purchasesPerRun} purchases per implementation; CPU µs per purchase (user + system)`);
  console.log(`1-minute load average: ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after\n`);
  console.table(
    rows.map((row) => ({
      implementation: row.implementation,
      'median µs': row.medianMicrosPerPurchase,
      'min µs': row.minMicrosPerPurchase,
      'max µs': row.maxMicrosPerPurchase,
      'spread %': row.spreadPercent,
      'SDK ÷ this': row.sdkOverThis,
      'paired SDK ÷ this, median': row.sdkOverThisPairedMedian,
      'paired, min': row.sdkOverThisPairedMin,
    })),
  );

  const resultsPath = join(dirname(fileURLToPath(import.meta.url)), 'results', 'intent-cpu.json');
  mkdirSync(dirname(resultsPath), { recursive: true });
  writeFileSync(
    resultsPath,
    JSON.stringify(
      {
        benchmark: 'intent-cpu',
        command: 'npx tsx bench/intent-cpu.ts',
        date: new Date().toISOString(),
        node: process.version,
        cpuModel: cpuModel(),
        cpuCount: cpus().length,
        loadAverage1m: { before: round(loadBefore), after: round(loadAfter) },
        runs,
        purchasesPerRun,
        measures: 'process.cpuUsage() user + system microseconds per purchase: key, intent id and SendMessageRequest bytes',
        results: rows,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`\nWrote ${resultsPath}`);
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

function cpuModel(): string {
  const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
  return match?.[1] ?? cpus()[0]?.model ?? 'unknown';
}

await main();
