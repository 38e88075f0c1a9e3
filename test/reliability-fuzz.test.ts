// Property-based fuzzing of every socket event with fast-check: wrong types,
// huge strings and arrays, deep nesting, prototype keys, unicode edge cases,
// binary attachments and the valid ids of another player. Every payload gets
// an acknowledgement (`ok: false` with a known code, or a correct answer),
// the kit keeps running and rejected input changes nothing in the store.
//
//   CODE_PAY_FUZZ_RUNS=100000   payloads per event (default 10,000)
//   CODE_PAY_FUZZ_SEED=123      replays one run (fast-check prints the seed on failure)

import { randomUUID } from 'node:crypto';
import { join } from 'node:path';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ERROR_CODES, type ErrorCode } from '../protocol/index.js';
import { createCodePay, type CodePay, type StoredPurchase } from '../server/index.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import {
  GrantRecorder,
  kitOptions,
  makeTempDir,
  payIntent,
  randomAddress,
  startKitServer,
  startTestSandbox,
  waitForState,
  connectPlayer,
  type KitServer,
  type TestClient,
} from './kit-helpers.js';

const RUNS_PER_EVENT = Number(process.env.CODE_PAY_FUZZ_RUNS ?? 10_000);
const BATCH = 100;
const SEED = process.env.CODE_PAY_FUZZ_SEED === undefined ? undefined : Number(process.env.CODE_PAY_FUZZ_SEED);
/** Acknowledgement wait; generous because the machine may be busy, never a speed assertion. */
const ACK_TIMEOUT_MS = 20_000;

let sandbox: SandboxHandle;
let temp: { dir: string; remove: () => void };
let kit: CodePay;
let server: KitServer;
let mallory: TestClient;
let alice: StoredPurchase[];

/** Ids that belong to alice; mallory sends them to try to reach her purchases. */
const victimIds: string[] = [];

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox(temp.dir);
  kit = await createCodePay(
    kitOptions({
      sandbox,
      dbFile: join(temp.dir, 'fuzz.db'),
      destination: randomAddress(),
      grants: new GrantRecorder(),
      // No polling, so the only writes to the store come from the fuzzed requests.
      overrides: {
        rateLimit: { burst: 100_000, perSecond: 100_000 },
        polling: { intervalMs: 3_600_000, firstCheckAfterMs: 3_600_000, maxCheckIntervalMs: 3_600_000 },
      },
    }),
  );
  server = await startKitServer(kit);

  const pending = await kit.createPurchase('alice', { itemId: 'gems-10', attemptId: randomUUID() });
  const paid = await kit.createPurchase('alice', { itemId: 'sword' });
  await payIntent(sandbox, paid.intentId);
  await kit.revalidate('alice', paid.id);
  await waitForState(kit, paid.id, 'granted');
  const held = await kit.createPurchase('alice', { itemId: 'crown' });
  alice = await kit.listPurchases('alice');
  for (const purchase of [pending, paid, held]) {
    victimIds.push(purchase.id, purchase.intentId, purchase.clientSecret, purchase.idempotencyKey, purchase.attemptId ?? purchase.id);
  }

  mallory = await connectPlayer(server.url, 'player:mallory');
}, 60_000);

afterAll(async () => {
  mallory?.close();
  await server?.close();
  await kit?.close();
  await sandbox?.close();
  temp?.remove();
});

// ---- payloads -------------------------------------------------------------

const edgeStrings = fc.constantFrom(
  '',
  ' ',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'sword',
  'SWORD',
  'sword ',
  ' sword',
  'sword\u0000',
  '../sword',
  'gems-10',
  'crown',
  'no-such-item',
  '\u0000',
  '\uD800',
  '\uDFFF',
  '\uFEFF',
  '\u202E',
  'ﬀ',
  '𝔰𝔴𝔬𝔯𝔡',
  'sw\u200Bord',
  '%00',
  "'; DROP TABLE code_pay_purchases; --",
  '{"$ne":null}',
  'cancelled',
  'Cancelled',
  'paid',
  '12345678',
  '1234567',
  'a'.repeat(64),
  'a'.repeat(65),
);

/** One of alice's ids, picked when the payload is generated (after `beforeAll` filled the list). */
const victimId = fc.nat().map((index) => victimIds[index % Math.max(1, victimIds.length)] ?? '');

const weirdString = fc.oneof(
  { weight: 4, arbitrary: edgeStrings },
  { weight: 3, arbitrary: fc.string({ unit: 'grapheme', maxLength: 80 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }) },
  { weight: 3, arbitrary: victimId },
  { weight: 1, arbitrary: fc.string({ minLength: 1_000, maxLength: 4_000 }) },
  { weight: 1, arbitrary: fc.uuid() },
);

const weirdNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -0, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 1e308, -1e308),
);

/** A nested structure far deeper than any request needs. */
const deepNesting = fc.integer({ min: 50, max: 300 }).map((depth) => {
  let value: unknown = 'sword';
  for (let level = 0; level < depth; level += 1) {
    value = level % 2 === 0 ? [value] : { itemId: value };
  }
  return value;
});

const leaf: fc.Arbitrary<unknown> = fc.oneof(
  weirdString,
  weirdNumber,
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
);

const fieldName = fc.oneof(
  fc.constantFrom('itemId', 'attemptId', 'purchaseId', 'hint', '__proto__', 'constructor', 'prototype', 'playerId', 'amount', 'state'),
  fc.string({ maxLength: 12 }),
);

const anyValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { weight: 5, arbitrary: leaf },
    { weight: 1, arbitrary: fc.array(tie('value'), { maxLength: 5 }) },
    { weight: 1, arbitrary: fc.dictionary(fieldName, tie('value'), { maxKeys: 5 }) },
  ),
})).value;

/** Objects shaped like a request, with each field possibly wrong. */
function requestLike(fields: readonly string[]): fc.Arbitrary<unknown> {
  const entries = Object.fromEntries(fields.map((field) => [field, fc.oneof({ weight: 3, arbitrary: weirdString }, { weight: 1, arbitrary: anyValue })]));
  return fc.record(entries, { requiredKeys: [] }).chain((record) =>
    fc.oneof(
      { weight: 4, arbitrary: fc.constant(record) },
      { weight: 1, arbitrary: fc.dictionary(fieldName, anyValue, { maxKeys: 3 }).map((extra) => ({ ...record, ...extra })) },
      { weight: 1, arbitrary: fc.constant(JSON.parse(`{"__proto__": {"polluted": true}, "itemId": "sword"}`) as unknown) },
    ),
  );
}

const hugeArray = fc.integer({ min: 1_000, max: 3_000 }).map((length) => Array.from({ length }, (_, index) => index));

/** The argument list sent before the acknowledgement: usually one payload, sometimes none or several. */
function argumentsFor(payload: fc.Arbitrary<unknown>): fc.Arbitrary<unknown[]> {
  const anyPayload = fc.oneof(
    { weight: 6, arbitrary: payload },
    { weight: 3, arbitrary: anyValue },
    { weight: 1, arbitrary: deepNesting },
    { weight: 1, arbitrary: hugeArray },
  );
  return fc.oneof(
    { weight: 8, arbitrary: anyPayload.map((value) => [value]) },
    { weight: 1, arbitrary: fc.constant<unknown[]>([]) },
    { weight: 1, arbitrary: fc.array(anyPayload, { minLength: 2, maxLength: 3 }) },
  );
}

/** The kit's events, and the names socket.io-client refuses to emit. */
const KNOWN_AND_RESERVED_EVENTS = new Set(['catalog', 'purchase', 'revalidate', 'sync', 'connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']);

// ---- checks ---------------------------------------------------------------

interface AckBody {
  ok: unknown;
  error?: { code?: unknown; message?: unknown };
  [field: string]: unknown;
}

function emitWithAck(socket: TestClient, event: string, args: unknown[]): Promise<AckBody> {
  const untyped = socket.timeout(ACK_TIMEOUT_MS) as unknown as { emitWithAck(event: string, ...args: unknown[]): Promise<AckBody> };
  return untyped.emitWithAck(event, ...args);
}

/** A digest of every kit table, to show that rejected input changed nothing. */
async function storeDigest(): Promise<string> {
  const tables = ['code_pay_purchases', 'code_pay_transitions', 'code_pay_holds', 'code_pay_unique_owners', 'code_pay_reviews'];
  const parts: string[] = [];
  for (const table of tables) {
    const rows = await kit.store.transaction((tx) => tx.query(`SELECT * FROM ${table} ORDER BY 1`));
    parts.push(JSON.stringify(rows));
  }
  return parts.join('\n');
}

function expectRejection(ack: AckBody, args: unknown[]): void {
  expect(ack.ok, `payload ${formatArgs(args)} was accepted`).toBe(false);
  expect(ERROR_CODES as readonly unknown[], `unknown error code for ${formatArgs(args)}`).toContain(ack.error?.code);
  expect(typeof ack.error?.message).toBe('string');
}

function formatArgs(args: unknown[]): string {
  const text = JSON.stringify(args, (_key, value: unknown) => (typeof value === 'string' && value.length > 80 ? `${value.slice(0, 80)}…(${value.length})` : value));
  return text === undefined ? String(args) : text.slice(0, 400);
}

function fuzzParameters(): fc.Parameters<[unknown[][]]> {
  return { numRuns: Math.ceil(RUNS_PER_EVENT / BATCH), seed: SEED, endOnFailure: true };
}

/** Sends every argument list of a batch at once and returns the acknowledgements in order. */
function sendBatch(event: string, batch: unknown[][]): Promise<AckBody[]> {
  return Promise.all(batch.map((args) => emitWithAck(mallory, event, args)));
}

const batchOf = (args: fc.Arbitrary<unknown[]>): fc.Arbitrary<unknown[][]> => fc.array(args, { minLength: BATCH, maxLength: BATCH });

// ---- properties -----------------------------------------------------------

describe('socket fuzzing', () => {
  it('answers catalog with the catalog or a rejection', { timeout: 600_000 }, async () => {
    const before = await storeDigest();
    await fc.assert(
      fc.asyncProperty(batchOf(argumentsFor(fc.oneof(fc.constant(undefined), fc.constant({}), requestLike(['itemId'])))), async (batch) => {
        const acks = await sendBatch('catalog', batch);
        acks.forEach((ack, index) => {
          if (ack.ok === true) {
            expect(Array.isArray(ack.items)).toBe(true);
            expect((ack.items as unknown[]).length).toBe(3);
          } else {
            expectRejection(ack, batch[index]!);
          }
        });
      }),
      fuzzParameters(),
    );
    expect(await storeDigest()).toBe(before);
  });

  it('answers sync with only the player\'s own purchases', { timeout: 600_000 }, async () => {
    const before = await storeDigest();
    await fc.assert(
      fc.asyncProperty(batchOf(argumentsFor(fc.oneof(fc.constant(undefined), fc.constant({}), requestLike(['purchaseId'])))), async (batch) => {
        const acks = await sendBatch('sync', batch);
        acks.forEach((ack, index) => {
          if (ack.ok === true) {
            expect(ack.purchases).toEqual([]);
            expect(ack.entitlements).toEqual({});
          } else {
            expectRejection(ack, batch[index]!);
          }
        });
      }),
      fuzzParameters(),
    );
    expect(await storeDigest()).toBe(before);
  });

  it('rejects revalidate of anything but the player\'s purchases', { timeout: 600_000 }, async () => {
    const before = await storeDigest();
    await fc.assert(
      fc.asyncProperty(batchOf(argumentsFor(requestLike(['purchaseId', 'hint']))), async (batch) => {
        const acks = await sendBatch('revalidate', batch);
        acks.forEach((ack, index) => expectRejection(ack, batch[index]!));
      }),
      fuzzParameters(),
    );
    expect(await storeDigest()).toBe(before);
  });

  it('creates purchases only for valid requests', { timeout: 600_000 }, async () => {
    const aliceBefore = JSON.stringify(await kit.listPurchases('alice'));
    const accepted = new Set<string>();
    const codes = new Set<ErrorCode>(['invalid_request', 'unknown_item', 'reserved', 'already_owned', 'sold_out']);

    await fc.assert(
      fc.asyncProperty(batchOf(argumentsFor(requestLike(['itemId', 'attemptId']))), async (batch) => {
        const acks = await sendBatch('purchase', batch);
        acks.forEach((ack, index) => {
          const args = batch[index]!;
          if (ack.ok === true) {
            const purchase = ack.purchase as { id: string; itemId: string; state: string };
            expect(['sword', 'gems-10'], `accepted ${formatArgs(args)}`).toContain(purchase.itemId);
            expect((args[0] as { itemId?: unknown }).itemId).toBe(purchase.itemId);
            accepted.add(purchase.id);
            return;
          }
          expectRejection(ack, args);
          expect([...codes], `unexpected code for ${formatArgs(args)}`).toContain(ack.error?.code);
        });
      }),
      fuzzParameters(),
    );

    // Alice's purchases are untouched, and every row mallory has came from an accepted request.
    expect(JSON.stringify(await kit.listPurchases('alice'))).toBe(aliceBefore);
    const malloryRows = await kit.listPurchases('mallory');
    expect(new Set(malloryRows.map((purchase) => purchase.id))).toEqual(accepted);
    const allRows = await kit.store.transaction((tx) => tx.query<{ n: number }>('SELECT COUNT(*) AS n FROM code_pay_purchases'));
    expect(Number(allRows[0]!.n)).toBe(alice.length + accepted.size);
  });

  it('rejects unknown events with invalid_request', { timeout: 600_000 }, async () => {
    const before = await storeDigest();
    const eventName = fc.oneof(
      fc.constantFrom('purchases', 'Purchase', 'grant', 'purchase:updated', 'admin', '__proto__', 'constructor', 'toString', 'catalog ', ''),
      fc.string({ maxLength: 30 }).filter((name) => !KNOWN_AND_RESERVED_EVENTS.has(name)),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(eventName, argumentsFor(anyValue)), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        const acks = await Promise.all(batch.map(([event, args]) => emitWithAck(mallory, event, args)));
        acks.forEach((ack, index) => {
          expectRejection(ack, batch[index]![1]);
          expect(ack.error?.code).toBe('invalid_request');
        });
      }),
      fuzzParameters(),
    );
    expect(await storeDigest()).toBe(before);
  });

  it('survives requests without an acknowledgement', { timeout: 120_000 }, async () => {
    const before = await storeDigest();
    const samples = fc.sample(fc.tuple(fc.constantFrom('catalog', 'purchase', 'revalidate', 'sync', 'unknown'), argumentsFor(anyValue)), {
      numRuns: 2_000,
      seed: SEED,
    });
    for (const [event, args] of samples) {
      (mallory.emit as (event: string, ...args: unknown[]) => void)(event, ...args);
    }
    // A request after the flood still gets its answer on the same connection.
    const ack = await emitWithAck(mallory, 'catalog', []);
    expect(ack.ok).toBe(true);
    expect(mallory.connected).toBe(true);
    expect(await storeDigest()).toBe(before);
  });
});
