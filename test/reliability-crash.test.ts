// The crash matrix: a kit server killed with SIGKILL at random crash points
// hundreds of times while players buy, pay, decline, retry and reload, then
// checked against the sandbox ledger. See docs/RELIABILITY.md.
//
//   CODE_PAY_CRASH_SEED=123      replays one run (the seed is printed on failure)
//   CODE_PAY_CRASH_ROUNDS=5000   a long run (default 200)
//   CODE_PAY_CRASH_PG_ROUNDS=500 rounds of the run on PostgreSQL (default 30; skipped without a reachable server)

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CRASH_POINTS } from '../server/crash-points.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import { checkInvariants, runCrashMatrix, type Arming } from './reliability/crash-harness.js';
import { makeTempDir, startTestSandbox } from './kit-helpers.js';
import { createTestDatabase, isPostgresReachable } from './postgres-helpers.js';

const SEED = Number(process.env.CODE_PAY_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
const ROUNDS = Number(process.env.CODE_PAY_CRASH_ROUNDS ?? 200);
const PLAYERS = Number(process.env.CODE_PAY_CRASH_PLAYERS ?? 4);
const POSTGRES_ROUNDS = Number(process.env.CODE_PAY_CRASH_PG_ROUNDS ?? 30);
const postgresReachable = await isPostgresReachable();

function logRound(round: number, arming: Arming, fired: string | undefined, elapsedMs: number): void {
  console.info(`round ${round}: armed ${arming.point}+${arming.survivePasses}, fired ${fired ?? '-'}, ${elapsedMs} ms`);
}

let sandbox: SandboxHandle;
let temp: { dir: string; remove: () => void };

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox(temp.dir);
});

afterAll(async () => {
  await sandbox?.close();
  temp?.remove();
});

describe('crash matrix', () => {
  it(`keeps every payment after ${ROUNDS} crashes (seed ${SEED})`, { timeout: Math.max(600_000, ROUNDS * 10_000) }, async () => {
    const replay = `replay with CODE_PAY_CRASH_SEED=${SEED} CODE_PAY_CRASH_ROUNDS=${ROUNDS}`;
    const dbFile = join(temp.dir, 'crash-kit.db');

    let result;
    try {
      result = await runCrashMatrix({
        seed: SEED,
        rounds: ROUNDS,
        players: PLAYERS,
        sandbox,
        database: dbFile,
        maxLifeMs: 1_500,
        onRound: process.env.CODE_PAY_CRASH_VERBOSE ? logRound : undefined,
      });
    } catch (error) {
      throw new Error(`The crash matrix failed to run (${replay}): ${(error as Error).message}`, { cause: error });
    }

    const problems = await checkInvariants(sandbox, dbFile);
    expect(problems, `invariants broken (${replay})`).toEqual([]);

    const crashes = [...result.fired.values()].reduce((sum, count) => sum + count, 0) + result.externalKills;
    expect(crashes, replay).toBe(ROUNDS);
    if (ROUNDS >= 100) {
      for (const point of CRASH_POINTS) {
        expect(result.fired.get(point) ?? 0, `crash point ${point} never fired (${replay})`).toBeGreaterThan(0);
      }
    }

    const acknowledged = result.players.reduce((sum, player) => sum + player.purchases.size, 0);
    expect(acknowledged, `no purchase was ever acknowledged (${replay})`).toBeGreaterThan(0);
    console.info(
      `crash matrix seed ${SEED}: ${ROUNDS} kills, ${crashes - result.externalKills} at crash points ` +
        `(${[...result.fired].map(([point, count]) => `${point} ${count}`).join(', ')}), ${result.externalKills} from outside, ` +
        `${acknowledged} purchases acknowledged`,
    );
  });

  it.skipIf(!postgresReachable)(`keeps every payment on PostgreSQL after ${POSTGRES_ROUNDS} crashes (seed ${SEED})`, { timeout: Math.max(300_000, POSTGRES_ROUNDS * 10_000) }, async () => {
    const replay = `replay with CODE_PAY_CRASH_SEED=${SEED} CODE_PAY_CRASH_PG_ROUNDS=${POSTGRES_ROUNDS}`;
    const database = await createTestDatabase();
    // A sandbox of its own, so its ledger holds only this run's charges.
    const ownDir = join(temp.dir, 'postgres-run');
    mkdirSync(ownDir);
    const ownSandbox = await startTestSandbox(ownDir);

    try {
      const result = await runCrashMatrix({
        seed: SEED,
        rounds: POSTGRES_ROUNDS,
        players: PLAYERS,
        sandbox: ownSandbox,
        database: database.url,
        maxLifeMs: 1_500,
        onRound: process.env.CODE_PAY_CRASH_VERBOSE ? logRound : undefined,
      });

      const problems = await checkInvariants(ownSandbox, database.url);
      expect(problems, `invariants broken on PostgreSQL (${replay})`).toEqual([]);
      const acknowledged = result.players.reduce((sum, player) => sum + player.purchases.size, 0);
      expect(acknowledged, `no purchase was ever acknowledged (${replay})`).toBeGreaterThan(0);
    } finally {
      await ownSandbox.close();
      await database.drop();
    }
  });
});
