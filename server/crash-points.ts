// Named crash points along the purchase pipeline, for the crash-matrix tests.
// Each call site names a step where a real process could die (power loss,
// OOM kill, a deploy). A point is armed only by environment variables read
// once when this module loads; unarmed, `crashPoint` is one comparison.
//
//   CODE_PAY_CRASH_POINT        a point name, several separated by commas, or `*` for every point
//   CODE_PAY_CRASH_PROBABILITY  chance of crashing at each pass of an armed point, 0 to 1 (default 1)
//   CODE_PAY_CRASH_AFTER        passes of armed points to survive before the probability applies (default 0)
//
// An armed point that fires kills the process with SIGKILL, so no `finally`,
// exit handler or buffered write runs, as after a real crash.

/** Every crash point, in pipeline order. */
export const CRASH_POINTS = [
  /** The idempotency key is derived, and nothing is sent or stored yet. */
  'after-key-derivation',
  /** The sequencer accepted `SendMessage`, but the purchase is not stored yet. */
  'after-send-message',
  /** The purchase is stored, but the socket acknowledgement is not sent yet. */
  'after-purchase-stored',
  /** A webhook verified, but the `paid` transition has not run. */
  'after-webhook-verified',
  /** The grant handler ran inside the grant transaction, which has not committed. */
  'inside-grant-transaction',
  /** The grant committed, but the `purchase:updated` push is not sent yet. */
  'after-grant-commit',
  /** The start-up reconciliation checked one open purchase. */
  'during-reconciliation',
] as const;

export type CrashPointName = (typeof CRASH_POINTS)[number];

interface CrashArming {
  points: ReadonlySet<string>;
  probability: number;
  survivePasses: number;
}

/** Parses the arming variables. Throws for a value that would silently disarm a test. */
export function readCrashArming(env: NodeJS.ProcessEnv): CrashArming | undefined {
  const raw = env.CODE_PAY_CRASH_POINT?.trim();
  if (raw === undefined || raw === '') {
    return undefined;
  }

  const names = raw === '*' ? [...CRASH_POINTS] : raw.split(',').map((name) => name.trim());
  for (const name of names) {
    if (!(CRASH_POINTS as readonly string[]).includes(name)) {
      throw new Error(`Invalid CODE_PAY_CRASH_POINT ${JSON.stringify(name)}: expected * or one of ${CRASH_POINTS.join(', ')}.`);
    }
  }

  const probability = Number(env.CODE_PAY_CRASH_PROBABILITY ?? '1');
  if (!Number.isFinite(probability) || probability < 0 || probability > 1) {
    throw new Error(`Invalid CODE_PAY_CRASH_PROBABILITY ${JSON.stringify(env.CODE_PAY_CRASH_PROBABILITY)}: expected a number from 0 to 1.`);
  }

  const survivePasses = Number(env.CODE_PAY_CRASH_AFTER ?? '0');
  if (!Number.isInteger(survivePasses) || survivePasses < 0) {
    throw new Error(`Invalid CODE_PAY_CRASH_AFTER ${JSON.stringify(env.CODE_PAY_CRASH_AFTER)}: expected a whole number from 0.`);
  }

  return { points: new Set(names), probability, survivePasses };
}

const arming = readCrashArming(process.env);
let passes = 0;

/** Kills this process with SIGKILL when `name` is armed and its turn has come; otherwise does nothing. */
export function crashPoint(name: CrashPointName): void {
  if (arming === undefined || !arming.points.has(name)) {
    return;
  }

  passes += 1;
  if (passes <= arming.survivePasses || Math.random() >= arming.probability) {
    return;
  }

  // A marker on stderr lets the harness tell an armed crash from any other death.
  process.stderr.write(`code-pay crash point fired: ${name}\n`);
  process.kill(process.pid, 'SIGKILL');
}
