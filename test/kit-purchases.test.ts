// Purchase creation against the sandbox sequencer and SQLite files: keys and
// retries of each kind, holds of unique items, pinned prices, restarts and
// concurrent identical requests.

import { randomBytes } from 'node:crypto';
import { basename, join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { CodePayError, createCodePay, type CodePay } from '../server/index.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import {
  CATALOG,
  GrantRecorder,
  kitOptions,
  ledger,
  makeTempDir,
  payIntent,
  randomAddress,
  sandboxStats,
  startTestSandbox,
  waitForState,
} from './kit-helpers.js';

let sandbox: SandboxHandle;
let temp: { dir: string; remove: () => void };
const kits: CodePay[] = [];
let fileCounter = 0;

function newDbFile(): string {
  fileCounter += 1;
  return join(temp.dir, `kit-${fileCounter}.db`);
}

async function startKit(
  options: { dbFile?: string; destination?: string; grants?: GrantRecorder; overrides?: Parameters<typeof kitOptions>[0]['overrides'] } = {},
): Promise<{ kit: CodePay; grants: GrantRecorder; dbFile: string; destination: string }> {
  const grants = options.grants ?? new GrantRecorder();
  const dbFile = options.dbFile ?? newDbFile();
  const destination = options.destination ?? randomAddress();
  // One game id per database file: the sandbox is shared, and Code's key space is global across games.
  const overrides = { gameId: basename(dbFile, '.db'), ...options.overrides };
  const kit = await createCodePay(kitOptions({ sandbox, dbFile, destination, grants, overrides }));
  kits.push(kit);
  return { kit, grants, dbFile, destination };
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<CodePayError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(CodePayError);
  expect((error as CodePayError).code).toBe(code);
  return error as CodePayError;
}

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox(temp.dir);
});

afterEach(async () => {
  await Promise.all(kits.splice(0).map((kit) => kit.close()));
});

afterAll(async () => {
  await sandbox.close();
  temp.remove();
});

describe('permanent items', () => {
  it('returns the same purchase on a retry', async () => {
    const { kit } = await startKit();

    const first = await kit.createPurchase('alice', { itemId: 'sword' });
    const second = await kit.createPurchase('alice', { itemId: 'sword' });

    expect(first.state).toBe('pending');
    expect(second.id).toBe(first.id);
    expect(second.intentId).toBe(first.intentId);
    expect(second.clientSecret).toBe(first.clientSecret);
    expect(sandbox.context.getIntent(first.intentId)?.amount).toBe(0.25);
  });

  it('gives each player their own intent', async () => {
    const { kit } = await startKit();

    const alice = await kit.createPurchase('alice', { itemId: 'sword' });
    const bob = await kit.createPurchase('bob', { itemId: 'sword' });

    expect(bob.id).not.toBe(alice.id);
    expect(bob.intentId).not.toBe(alice.intentId);
  });

  it('ignores an attempt id', async () => {
    const { kit } = await startKit();

    const first = await kit.createPurchase('alice', { itemId: 'sword', attemptId: 'attempt-0001' });
    const second = await kit.createPurchase('alice', { itemId: 'sword', attemptId: 'attempt-0002' });

    expect(second.id).toBe(first.id);
    expect(second.attemptId).toBeUndefined();
  });

  it('answers already_owned once granted', async () => {
    const { kit, grants } = await startKit();
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });

    await payIntent(sandbox, purchase.intentId);
    await waitForState(kit, purchase.id, 'granted');

    await expectCode(kit.createPurchase('alice', { itemId: 'sword' }), 'already_owned');
    expect(grants.countFor(purchase.id)).toBe(1);
    expect(await kit.entitlements('alice')).toEqual({ sword: 1 });
  });
});

describe('consumable items', () => {
  it('requires a valid attempt id', async () => {
    const { kit } = await startKit();

    await expectCode(kit.createPurchase('alice', { itemId: 'gems-10' }), 'invalid_request');
    await expectCode(kit.createPurchase('alice', { itemId: 'gems-10', attemptId: 'short' }), 'invalid_request');
    await expectCode(kit.createPurchase('alice', { itemId: 'gems-10', attemptId: 'has spaces in it' }), 'invalid_request');
    expect(await kit.listPurchases('alice')).toEqual([]);
  });

  it('keys purchases by attempt id and player', async () => {
    const { kit } = await startKit();

    const first = await kit.createPurchase('alice', { itemId: 'gems-10', attemptId: 'attempt-0001' });
    const retry = await kit.createPurchase('alice', { itemId: 'gems-10', attemptId: 'attempt-0001' });
    const next = await kit.createPurchase('alice', { itemId: 'gems-10', attemptId: 'attempt-0002' });
    const otherPlayer = await kit.createPurchase('bob', { itemId: 'gems-10', attemptId: 'attempt-0001' });

    expect(retry.id).toBe(first.id);
    expect(first.attemptId).toBe('attempt-0001');
    expect(next.id).not.toBe(first.id);
    expect(otherPlayer.id).not.toBe(first.id);
    expect(otherPlayer.intentId).not.toBe(first.intentId);
  });

  it('returns a granted consumable on a retry', async () => {
    const { kit, grants } = await startKit();
    const purchase = await kit.createPurchase('alice', { itemId: 'gems-10', attemptId: 'attempt-0001' });

    await payIntent(sandbox, purchase.intentId);
    await waitForState(kit, purchase.id, 'granted');
    const retry = await kit.createPurchase('alice', { itemId: 'gems-10', attemptId: 'attempt-0001' });

    expect(retry.id).toBe(purchase.id);
    expect(retry.state).toBe('granted');
    expect(grants.countFor(purchase.id)).toBe(1);
  });
});

describe('unique items', () => {
  it('holds the item for the first player', async () => {
    const { kit } = await startKit();

    const alice = await kit.createPurchase('alice', { itemId: 'crown' });
    const retry = await kit.createPurchase('alice', { itemId: 'crown' });

    expect(retry.id).toBe(alice.id);
    await expectCode(kit.createPurchase('bob', { itemId: 'crown' }), 'reserved');
    expect(await kit.listPurchases('bob')).toEqual([]);
  });

  it('answers sold_out once granted', async () => {
    const { kit, grants } = await startKit();
    const alice = await kit.createPurchase('alice', { itemId: 'crown' });

    await payIntent(sandbox, alice.intentId);
    await waitForState(kit, alice.id, 'granted');

    await expectCode(kit.createPurchase('bob', { itemId: 'crown' }), 'sold_out');
    await expectCode(kit.createPurchase('alice', { itemId: 'crown' }), 'already_owned');
    expect(grants.countFor(alice.id)).toBe(1);
  });

  it('releases the hold at its deadline', async () => {
    const { kit } = await startKit({ overrides: { uniqueHoldMs: 200 } });
    const alice = await kit.createPurchase('alice', { itemId: 'crown' });

    await new Promise((resolve) => setTimeout(resolve, 300));
    const bob = await kit.createPurchase('bob', { itemId: 'crown' });

    expect(bob.intentId).not.toBe(alice.intentId);
    await expectCode(kit.createPurchase('alice', { itemId: 'crown' }), 'reserved');
  });

  it('does not extend a hold past its window', async () => {
    const { kit } = await startKit({ overrides: { uniqueHoldMs: 300 } });
    const alice = await kit.createPurchase('alice', { itemId: 'crown' });

    // Retries inside the window return the purchase but do not push the deadline.
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect((await kit.createPurchase('alice', { itemId: 'crown' })).id).toBe(alice.id);
    await new Promise((resolve) => setTimeout(resolve, 200));

    await expectCode(kit.createPurchase('alice', { itemId: 'crown' }), 'reserved');
    const bob = await kit.createPurchase('bob', { itemId: 'crown' });
    expect(bob.intentId).not.toBe(alice.intentId);
  });

  it('keeps a paid item reserved until granted', async () => {
    const grants = new GrantRecorder();
    grants.failures = Number.MAX_SAFE_INTEGER;
    const { kit } = await startKit({ grants, overrides: { uniqueHoldMs: 100 } });
    const alice = await kit.createPurchase('alice', { itemId: 'crown' });
    await payIntent(sandbox, alice.intentId);
    await waitForState(kit, alice.id, 'paid');
    await new Promise((resolve) => setTimeout(resolve, 150));

    await expectCode(kit.createPurchase('bob', { itemId: 'crown' }), 'reserved');
    grants.failures = 0;
    await waitForState(kit, alice.id, 'granted');
    await expectCode(kit.createPurchase('bob', { itemId: 'crown' }), 'sold_out');
    expect(grants.countFor(alice.id)).toBe(1);
  });

  it('never grants a second payment', async () => {
    const { kit, grants } = await startKit({ overrides: { uniqueHoldMs: 100 } });
    const alice = await kit.createPurchase('alice', { itemId: 'crown' });
    await new Promise((resolve) => setTimeout(resolve, 150));
    const bob = await kit.createPurchase('bob', { itemId: 'crown' });

    await payIntent(sandbox, bob.intentId);
    await waitForState(kit, bob.id, 'granted');
    await payIntent(sandbox, alice.intentId);
    const conflicted = await waitForState(kit, alice.id, 'failed');

    expect(conflicted.failureReason).toBe('conflicting_payment');
    expect(grants.countFor(alice.id)).toBe(0);
    const reviews = await kit.store.listReviews();
    expect(reviews.map((review) => [review.kind, review.intentId])).toContainEqual(['conflicting_payment', alice.intentId]);
  });
});

describe('changed keys', () => {
  it('returns the open purchase after a key secret change', async () => {
    const { kit, dbFile, destination } = await startKit();
    const first = await kit.createPurchase('alice', { itemId: 'sword' });
    await kit.close();

    const rotated = randomBytes(32).toString('hex');
    const { kit: restarted, grants } = await startKit({ dbFile, destination, overrides: { keySecret: rotated } });
    const second = await restarted.createPurchase('alice', { itemId: 'sword' });

    expect(second.id).toBe(first.id);
    expect(second.intentId).toBe(first.intentId);
    await payIntent(sandbox, first.intentId);
    await waitForState(restarted, first.id, 'granted');
    await expectCode(restarted.createPurchase('alice', { itemId: 'sword' }), 'already_owned');
    expect(grants.countFor(first.id)).toBe(1);
  });
});

describe('creation', () => {
  it('rejects an unknown item', async () => {
    const { kit } = await startKit();

    await expectCode(kit.createPurchase('alice', { itemId: 'no-such-item' }), 'unknown_item');
  });

  it('rejects an invalid player id', async () => {
    const { kit } = await startKit();

    await expectCode(kit.createPurchase('', { itemId: 'sword' }), 'invalid_request');
    await expectCode(kit.createPurchase('x'.repeat(201), { itemId: 'sword' }), 'invalid_request');
  });

  it('keeps the pinned price after a price change', async () => {
    const { kit, dbFile, destination } = await startKit();
    const first = await kit.createPurchase('alice', { itemId: 'sword' });
    await kit.close();

    const repriced = CATALOG.map((item) => (item.id === 'sword' ? { ...item, amount: 0.3 } : item));
    const { kit: restarted } = await startKit({ dbFile, destination, overrides: { catalog: repriced } });
    const retry = await restarted.createPurchase('alice', { itemId: 'sword' });
    const newPlayer = await restarted.createPurchase('bob', { itemId: 'sword' });

    expect(retry.id).toBe(first.id);
    expect(retry.amount).toBe(0.25);
    expect(retry.intentId).toBe(first.intentId);
    expect(newPlayer.amount).toBe(0.3);
  });

  it('completes a purchase after a restart', async () => {
    const { kit, dbFile, destination } = await startKit();
    const first = await kit.createPurchase('alice', { itemId: 'sword' });
    await kit.close();

    const grants = new GrantRecorder();
    const { kit: restarted } = await startKit({ dbFile, destination, grants });
    const retry = await restarted.createPurchase('alice', { itemId: 'sword' });
    await payIntent(sandbox, retry.intentId);
    await waitForState(restarted, first.id, 'granted');

    expect(retry.id).toBe(first.id);
    expect(grants.countFor(first.id)).toBe(1);
  });

  it('sends one SendMessage for 200 concurrent requests', async () => {
    const { kit, grants } = await startKit();
    sandbox.resetStats();

    const results = await Promise.all(Array.from({ length: 200 }, () => kit.createPurchase('carol', { itemId: 'sword' })));

    const ids = new Set(results.map((purchase) => purchase.id));
    const intents = new Set(results.map((purchase) => purchase.intentId));
    expect(ids.size).toBe(1);
    expect(intents.size).toBe(1);
    const stats = await sandboxStats(sandbox);
    expect(stats.rpc['Messaging.SendMessage']).toBe(1);

    const [intentId] = intents;
    await payIntent(sandbox, intentId);
    await waitForState(kit, results[0].id, 'granted');
    const charges = (await ledger(sandbox)).filter((entry) => entry.intentId === intentId);
    expect(charges).toHaveLength(1);
    expect(grants.countFor(results[0].id)).toBe(1);
  });

  it('agrees across two instances on one file', async () => {
    const dbFile = newDbFile();
    const destination = randomAddress();
    const { kit: first } = await startKit({ dbFile, destination });
    const { kit: second } = await startKit({ dbFile, destination });

    const results = await Promise.all(
      Array.from({ length: 20 }, (_, index) => (index % 2 === 0 ? first : second).createPurchase('dave', { itemId: 'sword' })),
    );

    expect(new Set(results.map((purchase) => purchase.id)).size).toBe(1);
    expect(new Set(results.map((purchase) => purchase.intentId)).size).toBe(1);
  });
});
