// The crash matrix: a kit server killed with SIGKILL at random crash points
// hundreds of times while players buy, pay, decline, retry and reload, then
// checked against the sandbox ledger. See docs/RELIABILITY.md.
//
//   CODE_PAY_CRASH_SEED=123      replays one run (the seed is printed on failure)
//   CODE_PAY_CRASH_ROUNDS=5000   a long run (default 200)

import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CRASH_POINTS } from '../server/crash-points.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import { checkInvariants, runCrashMatrix } from './reliability/crash-harness.js';
import { makeTempDir, startTestSandbox } from './kit-helpers.js';

const SEED = Number(process.env.CODE_PAY_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
const ROUNDS = Number(process.env.CODE_PAY_CRASH_ROUNDS ?? 200);
const PLAYERS = Number(process.env.CODE_PAY_CRASH_PLAYERS ?? 4);

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
        dbFile,
        maxLifeMs: 1_500,
        onRound: process.env.CODE_PAY_CRASH_VERBOSE
          ? (round, arming, fired, elapsedMs) => console.info(`round ${round}: armed ${arming.point}+${arming.survivePasses}, fired ${fired ?? '-'}, ${elapsedMs} ms`)
          : undefined,
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
});
