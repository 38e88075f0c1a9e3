// The purchase store contract as a shared vitest suite. Each engine's test file
// calls `describeStoreContract` with a target that creates empty databases, so
// the SQLite run and a later PostgreSQL run check the same promises.

import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { PURCHASE_STATES } from '../protocol/index.js';
import type { PurchaseState } from '../protocol/index.js';
import { CodePayError } from '../server/errors.js';
import { canTransition } from '../server/purchase-state.js';
import { MIGRATIONS } from '../server/store/migrations.js';
import type { Lease, NewPurchase, PurchaseStore, StoredPurchase } from '../server/store/types.js';

/** One empty database; every `open()` is a new connection to it with a migrated store. */
export interface TestDatabase {
  open(): Promise<PurchaseStore>;
}

export interface StoreTarget {
  createDatabase(): Promise<TestDatabase>;
}

const T0 = 1_700_000_000_000;

export function newPurchase(overrides: Partial<NewPurchase> = {}): NewPurchase {
  const suffix = randomUUID();
  return {
    id: `purchase-${suffix}`,
    idempotencyKey: `key-${suffix}`,
    playerId: 'player-1',
    itemId: 'sword',
    kind: 'permanent',
    intentId: `intent-${suffix}`,
    clientSecret: `secret-${suffix}`,
    amount: 0.25,
    currency: 'usd',
    destination: 'destination-wallet',
    createdAt: T0,
    nextCheckAt: T0 + 5_000,
    ...overrides,
  };
}

/** Expects `promise` to reject with a `CodePayError` of `code`; returns the error. */
export async function expectCodePayError(promise: Promise<unknown>, code: string): Promise<CodePayError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(CodePayError);
  expect((error as CodePayError).code).toBe(code);
  return error as CodePayError;
}

export function describeStoreContract(name: string, target: StoreTarget): void {
  describe(`purchase store contract: ${name}`, () => {
    const opened: PurchaseStore[] = [];

    async function openDatabase(): Promise<{ database: TestDatabase; store: PurchaseStore }> {
      const database = await target.createDatabase();
      const store = await database.open();
      opened.push(store);
      return { database, store };
    }

    async function openAgain(database: TestDatabase): Promise<PurchaseStore> {
      const store = await database.open();
      opened.push(store);
      return store;
    }

    async function freshStore(): Promise<PurchaseStore> {
      return (await openDatabase()).store;
    }

    async function insertPaid(store: PurchaseStore, overrides: Partial<NewPurchase> = {}): Promise<StoredPurchase> {
      const { purchase } = await store.insertPurchase(newPurchase(overrides));
      const result = await store.transition({ purchaseId: purchase.id, to: 'paid', source: 'webhook', at: T0 + 1_000 });
      return result.purchase;
    }

    /** Creates a game table through the store, as a game would for its inventory. */
    async function createInventory(store: PurchaseStore): Promise<void> {
      await store.transaction(async (tx) => {
        await tx.execute('CREATE TABLE IF NOT EXISTS game_inventory (purchase_id TEXT PRIMARY KEY, player_id TEXT NOT NULL, item_id TEXT NOT NULL)');
      });
    }

    async function inventoryRows(store: PurchaseStore): Promise<Array<{ purchase_id: string }>> {
      return store.transaction((tx) => tx.query<{ purchase_id: string }>('SELECT purchase_id FROM game_inventory ORDER BY purchase_id'));
    }

    afterEach(async () => {
      const stores = opened.splice(0);
      for (const store of stores) {
        await store.close();
      }
    });

    describe('insertPurchase', () => {
      it('returns the stored purchase on a retry', async () => {
        const store = await freshStore();
        const input = newPurchase({ attemptId: 'attempt-0001', kind: 'consumable' });

        const first = await store.insertPurchase(input);
        const second = await store.insertPurchase(input);

        expect(first.created).toBe(true);
        expect(second.created).toBe(false);
        expect(second.purchase).toEqual(first.purchase);
        expect(first.purchase).toMatchObject({
          id: input.id,
          state: 'pending',
          attemptId: 'attempt-0001',
          amount: 0.25,
          createdAt: T0,
          updatedAt: T0,
          nextCheckAt: T0 + 5_000,
          checkAttempts: 0,
          nextGrantAt: null,
          grantAttempts: 0,
          paidAt: null,
          grantedAt: null,
          failureReason: null,
        });
        expect(await store.transitions(input.id)).toEqual([
          { purchaseId: input.id, from: null, to: 'pending', source: 'create', detail: null, at: T0 },
        ]);
      });

      it('keeps the pinned fields on a retry', async () => {
        const store = await freshStore();
        const input = newPurchase();
        await store.insertPurchase(input);

        const retry = await store.insertPurchase({ ...input, id: 'purchase-other', amount: 0.5, destination: 'other-wallet' });

        expect(retry.created).toBe(false);
        expect(retry.purchase.id).toBe(input.id);
        expect(retry.purchase.amount).toBe(0.25);
        expect(retry.purchase.destination).toBe('destination-wallet');
      });

      it('creates one row for 50 concurrent inserts', async () => {
        const store = await freshStore();
        const input = newPurchase();

        const results = await Promise.all(
          Array.from({ length: 50 }, (_, index) => store.insertPurchase({ ...input, id: `${input.id}-${index}` })),
        );

        expect(results.filter((result) => result.created)).toHaveLength(1);
        const winner = results.find((result) => result.created)!.purchase;
        for (const result of results) {
          expect(result.purchase).toEqual(winner);
        }
        expect(await store.listByPlayer(input.playerId)).toHaveLength(1);
      });

      it('creates one row for concurrent inserts from two stores', async () => {
        const { database, store: first } = await openDatabase();
        const second = await openAgain(database);
        const input = newPurchase();

        const results = await Promise.all(
          Array.from({ length: 50 }, (_, index) => (index % 2 === 0 ? first : second).insertPurchase({ ...input, id: `${input.id}-${index}` })),
        );

        expect(results.filter((result) => result.created)).toHaveLength(1);
        const ids = new Set(results.map((result) => result.purchase.id));
        expect(ids.size).toBe(1);
        expect(await first.listByPlayer(input.playerId)).toHaveLength(1);
        expect(await second.listByPlayer(input.playerId)).toHaveLength(1);
      });

      it('rejects an intent id stored under another key', async () => {
        const store = await freshStore();
        const input = newPurchase();
        await store.insertPurchase(input);

        const other = newPurchase({ intentId: input.intentId });
        await expectCodePayError(store.insertPurchase(other), 'invalid_request');

        expect(await store.getById(other.id)).toBeUndefined();
        expect(await store.getByKey(other.idempotencyKey)).toBeUndefined();
        expect((await store.getByIntentId(input.intentId))?.id).toBe(input.id);
      });

      it('rejects a purchase id stored under another key', async () => {
        const store = await freshStore();
        const input = newPurchase();
        await store.insertPurchase(input);

        const other = newPurchase({ id: input.id });
        await expectCodePayError(store.insertPurchase(other), 'invalid_request');
        expect(await store.getByKey(other.idempotencyKey)).toBeUndefined();
      });

      it('finds a purchase by id, key and intent id', async () => {
        const store = await freshStore();
        const input = newPurchase();
        const { purchase } = await store.insertPurchase(input);

        expect(await store.getById(input.id)).toEqual(purchase);
        expect(await store.getByKey(input.idempotencyKey)).toEqual(purchase);
        expect(await store.getByIntentId(input.intentId)).toEqual(purchase);
        expect(await store.getById('purchase-missing')).toBeUndefined();
      });
    });

    describe('bad input', () => {
      const invalidPurchases: Array<[string, Record<string, unknown>]> = [
        ['missing player id', { playerId: undefined }],
        ['empty idempotency key', { idempotencyKey: '' }],
        ['unknown kind', { kind: 'rental' }],
        ['negative amount', { amount: -1 }],
        ['amount as text', { amount: '0.25' }],
        ['fractional timestamp', { createdAt: 1.5 }],
        ['missing next check', { nextCheckAt: undefined }],
      ];

      for (const [label, change] of invalidPurchases) {
        it(`rejects insertPurchase with ${label}`, async () => {
          const store = await freshStore();
          const input = { ...newPurchase(), ...change } as NewPurchase;

          const error = await expectCodePayError(store.insertPurchase(input), 'invalid_request');

          expect(error.message).toContain('insertPurchase');
          expect(await store.getByKey(input.idempotencyKey || 'none')).toBeUndefined();
          expect(await store.listOpen(null, 100)).toEqual([]);
        });
      }

      it('rejects a transition to an unknown state', async () => {
        const store = await freshStore();
        const { purchase } = await store.insertPurchase(newPurchase());

        const error = await expectCodePayError(
          store.transition({ purchaseId: purchase.id, to: 'refunded' as PurchaseState, source: 'webhook', at: T0 + 1 }),
          'invalid_request',
        );

        expect(error.message).toContain('to');
        expect((await store.getById(purchase.id))?.state).toBe('pending');
        expect(await store.transitions(purchase.id)).toHaveLength(1);
      });

      it('rejects a transition without a source', async () => {
        const store = await freshStore();
        const { purchase } = await store.insertPurchase(newPurchase());

        const request = { purchaseId: purchase.id, to: 'paid', at: T0 + 1 } as unknown as Parameters<PurchaseStore['transition']>[0];
        await expectCodePayError(store.transition(request), 'invalid_request');

        expect((await store.getById(purchase.id))?.state).toBe('pending');
        expect(await store.transitions(purchase.id)).toHaveLength(1);
      });

      it('requires a failure reason for failed', async () => {
        const store = await freshStore();
        const { purchase } = await store.insertPurchase(newPurchase());

        await expectCodePayError(store.transition({ purchaseId: purchase.id, to: 'failed', source: 'poll', at: T0 + 1 }), 'invalid_request');

        expect((await store.getById(purchase.id))?.state).toBe('pending');
      });

      it('rejects a transition to granted', async () => {
        const store = await freshStore();
        const paid = await insertPaid(store);

        await expectCodePayError(store.transition({ purchaseId: paid.id, to: 'granted', source: 'webhook', at: T0 + 2 }), 'invalid_request');

        expect((await store.getById(paid.id))?.state).toBe('paid');
      });

      it('reports an unknown purchase as not found', async () => {
        const store = await freshStore();

        await expectCodePayError(store.transition({ purchaseId: 'purchase-missing', to: 'paid', source: 'webhook', at: T0 }), 'not_found');
        await expectCodePayError(store.grant('purchase-missing', () => undefined, T0), 'not_found');
        await expectCodePayError(store.scheduleCheck('purchase-missing', T0, 1), 'not_found');
        await expectCodePayError(store.recordGrantFailure('purchase-missing', 'boom', T0), 'not_found');
      });

      it('rejects bad hold, page and review input', async () => {
        const store = await freshStore();

        await expectCodePayError(store.acquireHold('crown', 'player-1', T0, T0), 'invalid_request');
        await expectCodePayError(store.acquireHold('', 'player-1', T0, T0 + 1), 'invalid_request');
        await expectCodePayError(store.listOpen(null, 0), 'invalid_request');
        await expectCodePayError(store.listChecksDue(Number.NaN, 10), 'invalid_request');
        await expectCodePayError(
          store.recordReview({ kind: 'lost' as 'unknown_intent', intentId: 'intent-1', purchaseId: null, payload: '{}', createdAt: T0 }),
          'invalid_request',
        );

        expect(await store.getHold('crown', T0)).toBeUndefined();
        expect(await store.listReviews()).toEqual([]);
      });
    });

    describe('transition', () => {
      it('moves pending to paid and schedules the grant', async () => {
        const store = await freshStore();
        const { purchase } = await store.insertPurchase(newPurchase());

        const result = await store.transition({ purchaseId: purchase.id, to: 'paid', source: 'webhook', detail: 'SUBMITTED', at: T0 + 1_000 });

        expect(result.changed).toBe(true);
        expect(result.from).toBe('pending');
        expect(result.purchase).toMatchObject({
          state: 'paid',
          paidAt: T0 + 1_000,
          updatedAt: T0 + 1_000,
          nextGrantAt: T0 + 1_000,
          nextCheckAt: null,
        });
        expect(await store.transitions(purchase.id)).toEqual([
          { purchaseId: purchase.id, from: null, to: 'pending', source: 'create', detail: null, at: T0 },
          { purchaseId: purchase.id, from: 'pending', to: 'paid', source: 'webhook', detail: 'SUBMITTED', at: T0 + 1_000 },
        ]);
      });

      it('returns changed false on a repeat', async () => {
        const store = await freshStore();
        const { purchase } = await store.insertPurchase(newPurchase());
        const first = await store.transition({ purchaseId: purchase.id, to: 'paid', source: 'webhook', at: T0 + 1_000 });

        const repeat = await store.transition({ purchaseId: purchase.id, to: 'paid', source: 'poll', at: T0 + 2_000 });

        expect(repeat.changed).toBe(false);
        expect(repeat.from).toBe('paid');
        expect(repeat.purchase).toEqual(first.purchase);
        expect(await store.transitions(purchase.id)).toHaveLength(2);
      });

      it('makes one change for concurrent identical transitions', async () => {
        const { database, store: first } = await openDatabase();
        const second = await openAgain(database);
        const { purchase } = await first.insertPurchase(newPurchase());

        const results = await Promise.all(
          Array.from({ length: 20 }, (_, index) =>
            (index % 2 === 0 ? first : second).transition({ purchaseId: purchase.id, to: 'paid', source: 'webhook', at: T0 + 1_000 }),
          ),
        );

        expect(results.filter((result) => result.changed)).toHaveLength(1);
        expect(await first.transitions(purchase.id)).toHaveLength(2);
      });

      it('grants a late payment after cancelled or expired', async () => {
        const store = await freshStore();

        for (const closedState of ['cancelled', 'expired'] as const) {
          const { purchase } = await store.insertPurchase(newPurchase());
          const closed = await store.transition({ purchaseId: purchase.id, to: closedState, source: 'poll', at: T0 + 1_000 });
          expect(closed.changed).toBe(true);
          expect(closed.purchase.nextCheckAt).toBe(T0 + 5_000);

          const late = await store.transition({ purchaseId: purchase.id, to: 'paid', source: 'webhook', at: T0 + 60_000 });
          expect(late.changed).toBe(true);
          expect(late.from).toBe(closedState);

          const outcome = await store.grant(purchase.id, () => undefined, T0 + 61_000);
          expect(outcome.status).toBe('granted');
        }
      });

      it('keeps failed and granted final', async () => {
        const store = await freshStore();
        const { purchase } = await store.insertPurchase(newPurchase());
        const failed = await store.transition({
          purchaseId: purchase.id,
          to: 'failed',
          source: 'create',
          failureReason: 'sequencer_rejected',
          at: T0 + 1,
        });
        expect(failed.purchase).toMatchObject({ state: 'failed', failureReason: 'sequencer_rejected', nextCheckAt: null });

        const granted = await insertPaid(store);
        await store.grant(granted.id, () => undefined, T0 + 2_000);

        for (const to of ['pending', 'paid', 'cancelled', 'expired', 'failed'] as const) {
          const failureReason = to === 'failed' ? 'sequencer_rejected' : undefined;
          const fromFailed = await store.transition({ purchaseId: purchase.id, to, source: 'poll', at: T0 + 3_000, failureReason });
          const fromGranted = await store.transition({ purchaseId: granted.id, to, source: 'poll', at: T0 + 3_000, failureReason });
          expect(fromFailed.changed).toBe(false);
          expect(fromGranted.changed).toBe(false);
        }
        expect((await store.getById(purchase.id))?.state).toBe('failed');
        expect((await store.getById(granted.id))?.state).toBe('granted');
      });

      it('follows the state machine for every pair', async () => {
        const store = await freshStore();

        /** Brings a new purchase to `state` through allowed moves. */
        async function purchaseIn(state: PurchaseState): Promise<StoredPurchase> {
          const { purchase } = await store.insertPurchase(newPurchase());
          if (state === 'pending') {
            return purchase;
          }
          if (state === 'granted') {
            await store.transition({ purchaseId: purchase.id, to: 'paid', source: 'webhook', at: T0 + 1 });
            return (await store.grant(purchase.id, () => undefined, T0 + 2)).purchase;
          }
          const failureReason = state === 'failed' ? 'sequencer_rejected' : undefined;
          return (await store.transition({ purchaseId: purchase.id, to: state, source: 'poll', at: T0 + 1, failureReason })).purchase;
        }

        for (const from of PURCHASE_STATES) {
          for (const to of PURCHASE_STATES) {
            if (to === 'granted') {
              continue;
            }
            const purchase = await purchaseIn(from);
            expect(purchase.state).toBe(from);

            const failureReason = to === 'failed' ? 'sequencer_rejected' : undefined;
            const result = await store.transition({ purchaseId: purchase.id, to, source: 'poll', at: T0 + 10, failureReason });

            const expected = canTransition(from, to);
            expect({ from, to, changed: result.changed }).toEqual({ from, to, changed: expected });
            expect(result.purchase.state).toBe(expected ? to : from);
          }
        }
      });
    });

    describe('grant', () => {
      it('commits the handler writes with the granted mark', async () => {
        const store = await freshStore();
        await createInventory(store);
        const paid = await insertPaid(store);

        const outcome = await store.grant(
          paid.id,
          async (purchase, tx) => {
            expect(purchase.state).toBe('paid');
            await tx.execute('INSERT INTO game_inventory (purchase_id, player_id, item_id) VALUES ($1, $2, $3)', [
              purchase.id,
              purchase.playerId,
              purchase.itemId,
            ]);
          },
          T0 + 2_000,
        );

        expect(outcome.status).toBe('granted');
        expect(outcome.purchase).toMatchObject({ state: 'granted', grantedAt: T0 + 2_000, nextGrantAt: null });
        expect(await inventoryRows(store)).toEqual([{ purchase_id: paid.id }]);
        expect(await store.entitlements(paid.playerId)).toEqual({ sword: 1 });
        expect((await store.transitions(paid.id)).map((entry) => entry.to)).toEqual(['pending', 'paid', 'granted']);
      });

      it('rolls back the handler writes when it throws', async () => {
        const store = await freshStore();
        await createInventory(store);
        const paid = await insertPaid(store);
        const failure = new Error('inventory service is down');

        const rejected = store.grant(
          paid.id,
          async (purchase, tx) => {
            await tx.execute('INSERT INTO game_inventory (purchase_id, player_id, item_id) VALUES ($1, $2, $3)', [
              purchase.id,
              purchase.playerId,
              purchase.itemId,
            ]);
            throw failure;
          },
          T0 + 2_000,
        );

        await expect(rejected).rejects.toBe(failure);
        expect(await inventoryRows(store)).toEqual([]);
        expect((await store.getById(paid.id))?.state).toBe('paid');
        expect(await store.transitions(paid.id)).toHaveLength(2);

        await store.recordGrantFailure(paid.id, failure.message, T0 + 60_000);
        expect(await store.getById(paid.id)).toMatchObject({
          state: 'paid',
          lastGrantError: 'inventory service is down',
          nextGrantAt: T0 + 60_000,
          grantAttempts: 1,
        });
        expect(await store.listGrantsDue(T0 + 59_999, 10)).toEqual([]);
        expect((await store.listGrantsDue(T0 + 60_000, 10)).map((purchase) => purchase.id)).toEqual([paid.id]);

        const retry = await store.grant(paid.id, () => undefined, T0 + 60_000);
        expect(retry.status).toBe('granted');
      });

      it('runs the handler once for 20 concurrent grants', async () => {
        const { database, store: first } = await openDatabase();
        const second = await openAgain(database);
        await createInventory(first);
        const paid = await insertPaid(first);
        let runs = 0;

        const outcomes = await Promise.all(
          Array.from({ length: 20 }, (_, index) =>
            (index % 2 === 0 ? first : second).grant(
              paid.id,
              async (purchase, tx) => {
                runs += 1;
                await new Promise((resolve) => setTimeout(resolve, 5));
                await tx.execute('INSERT INTO game_inventory (purchase_id, player_id, item_id) VALUES ($1, $2, $3)', [
                  purchase.id,
                  purchase.playerId,
                  purchase.itemId,
                ]);
              },
              T0 + 2_000,
            ),
          ),
        );

        expect(runs).toBe(1);
        expect(outcomes.filter((outcome) => outcome.status === 'granted')).toHaveLength(1);
        expect(outcomes.filter((outcome) => outcome.status === 'already_granted')).toHaveLength(19);
        expect(await inventoryRows(first)).toHaveLength(1);
      });

      it('skips purchases that are not paid', async () => {
        const store = await freshStore();
        const { purchase } = await store.insertPurchase(newPurchase());
        let runs = 0;

        const outcome = await store.grant(purchase.id, () => void (runs += 1), T0 + 1);

        expect(outcome.status).toBe('not_paid');
        expect(runs).toBe(0);
        expect((await store.getById(purchase.id))?.state).toBe('pending');
      });

      it('marks a unique item owned', async () => {
        const store = await freshStore();
        await store.acquireHold('crown', 'player-1', T0, T0 + 60_000);
        const paid = await insertPaid(store, { itemId: 'crown', kind: 'unique' });

        const outcome = await store.grant(paid.id, () => undefined, T0 + 2_000);

        expect(outcome.status).toBe('granted');
        expect(await store.getHold('crown', T0 + 2_000)).toEqual({ status: 'sold_out', ownerPlayerId: 'player-1' });
        expect(await store.acquireHold('crown', 'player-2', T0 + 120_000, T0 + 180_000)).toEqual({
          status: 'sold_out',
          ownerPlayerId: 'player-1',
        });
      });

      it('does not mark a unique item owned when the handler throws', async () => {
        const store = await freshStore();
        const paid = await insertPaid(store, { itemId: 'crown', kind: 'unique' });

        await expect(
          store.grant(
            paid.id,
            () => {
              throw new Error('no room in the inventory');
            },
            T0 + 2_000,
          ),
        ).rejects.toThrow('no room in the inventory');

        expect(await store.getHold('crown', T0 + 2_000)).toMatchObject({ status: 'held', holderPlayerId: 'player-1' });
        expect((await store.grant(paid.id, () => undefined, T0 + 3_000)).status).toBe('granted');
      });

      it('records a conflicting payment for an owned unique item', async () => {
        const store = await freshStore();
        const owner = await insertPaid(store, { itemId: 'crown', kind: 'unique', playerId: 'player-1' });
        await store.grant(owner.id, () => undefined, T0 + 2_000);
        const late = await insertPaid(store, { itemId: 'crown', kind: 'unique', playerId: 'player-2' });
        let runs = 0;

        const outcome = await store.grant(late.id, () => void (runs += 1), T0 + 3_000);

        expect(outcome.status).toBe('conflict');
        expect(runs).toBe(0);
        expect(outcome.purchase).toMatchObject({ state: 'failed', failureReason: 'conflicting_payment', nextGrantAt: null });
        expect(await store.getById(late.id)).toMatchObject({ state: 'failed', failureReason: 'conflicting_payment' });
        expect(await store.entitlements('player-2')).toEqual({});
        expect(await store.listGrantsDue(T0 + 10_000, 10)).toEqual([]);

        const reviews = await store.listReviews();
        expect(reviews).toHaveLength(1);
        expect(reviews[0]).toMatchObject({ kind: 'conflicting_payment', intentId: late.intentId, purchaseId: late.id, createdAt: T0 + 3_000 });
        expect(JSON.parse(reviews[0].payload)).toMatchObject({ ownerPurchaseId: owner.id, ownerPlayerId: 'player-1', amount: 0.25 });

        const repeat = await store.grant(late.id, () => void (runs += 1), T0 + 4_000);
        expect(repeat.status).toBe('not_paid');
        expect(runs).toBe(0);
      });
    });

    describe('holds', () => {
      it('gives one holder at a time until the deadline', async () => {
        const store = await freshStore();

        expect(await store.acquireHold('crown', 'player-1', T0, T0 + 60_000)).toEqual({
          status: 'held',
          expiresAt: T0 + 60_000,
          holderPlayerId: 'player-1',
        });
        expect(await store.acquireHold('crown', 'player-2', T0 + 1_000, T0 + 61_000)).toEqual({
          status: 'reserved',
          expiresAt: T0 + 60_000,
          holderPlayerId: 'player-1',
        });
        expect(await store.getHold('crown', T0 + 1_000)).toEqual({ status: 'held', expiresAt: T0 + 60_000, holderPlayerId: 'player-1' });
      });

      it('extends the hold for the same player', async () => {
        const store = await freshStore();
        await store.acquireHold('crown', 'player-1', T0, T0 + 60_000);

        const extended = await store.acquireHold('crown', 'player-1', T0 + 30_000, T0 + 90_000);
        expect(extended).toEqual({ status: 'held', expiresAt: T0 + 90_000, holderPlayerId: 'player-1' });

        const earlier = await store.acquireHold('crown', 'player-1', T0 + 31_000, T0 + 40_000);
        expect(earlier).toEqual({ status: 'held', expiresAt: T0 + 90_000, holderPlayerId: 'player-1' });
      });

      it('lets another player take a lapsed hold', async () => {
        const store = await freshStore();
        await store.acquireHold('crown', 'player-1', T0, T0 + 60_000);

        expect(await store.getHold('crown', T0 + 60_000)).toBeUndefined();
        expect(await store.acquireHold('crown', 'player-2', T0 + 60_000, T0 + 120_000)).toEqual({
          status: 'held',
          expiresAt: T0 + 120_000,
          holderPlayerId: 'player-2',
        });
        expect(await store.acquireHold('crown', 'player-1', T0 + 61_000, T0 + 121_000)).toMatchObject({ status: 'reserved' });
      });

      it('gives one holder among concurrent players', async () => {
        const { database, store: first } = await openDatabase();
        const second = await openAgain(database);

        const outcomes = await Promise.all(
          Array.from({ length: 30 }, (_, index) =>
            (index % 2 === 0 ? first : second).acquireHold('crown', `player-${index}`, T0, T0 + 60_000),
          ),
        );

        const heldOutcomes = outcomes.filter((outcome) => outcome.status === 'held');
        expect(heldOutcomes).toHaveLength(1);
        const holder = (heldOutcomes[0] as { holderPlayerId: string }).holderPlayerId;
        for (const outcome of outcomes.filter((outcome) => outcome.status !== 'held')) {
          expect(outcome).toEqual({ status: 'reserved', expiresAt: T0 + 60_000, holderPlayerId: holder });
        }
      });

      it('reserves an item another player paid for', async () => {
        const store = await freshStore();
        await store.acquireHold('crown', 'player-1', T0, T0 + 60_000);
        const paid = await insertPaid(store, { itemId: 'crown', kind: 'unique', playerId: 'player-1' });

        // The payer's hold has lapsed, but the paid purchase still waits for its grant.
        const outcome = await store.acquireHold('crown', 'player-2', T0 + 120_000, T0 + 180_000);
        expect(outcome.status).toBe('reserved');
        expect(outcome).toMatchObject({ holderPlayerId: 'player-1' });
        expect((outcome as { expiresAt: number }).expiresAt).toBeGreaterThan(T0 + 120_000);

        expect(await store.getHold('crown', T0 + 120_000)).toMatchObject({ status: 'held', holderPlayerId: 'player-1' });
        expect(await store.acquireHold('crown', 'player-1', T0 + 120_000, T0 + 180_000)).toEqual({
          status: 'held',
          expiresAt: T0 + 180_000,
          holderPlayerId: 'player-1',
        });

        await store.grant(paid.id, () => undefined, T0 + 130_000);
        expect(await store.acquireHold('crown', 'player-2', T0 + 140_000, T0 + 200_000)).toEqual({
          status: 'sold_out',
          ownerPlayerId: 'player-1',
        });
      });

      it('frees an item whose paid purchase failed', async () => {
        const store = await freshStore();
        const paid = await insertPaid(store, { itemId: 'crown', kind: 'unique', playerId: 'player-1' });
        await store.transaction((tx) =>
          tx.execute("UPDATE code_pay_purchases SET state = 'failed', failure_reason = 'test' WHERE id = $1", [paid.id]),
        );

        expect(await store.getHold('crown', T0 + 120_000)).toBeUndefined();
        expect(await store.acquireHold('crown', 'player-2', T0 + 120_000, T0 + 180_000)).toMatchObject({
          status: 'held',
          holderPlayerId: 'player-2',
        });
      });

      it('keeps holds of different items apart', async () => {
        const store = await freshStore();

        expect((await store.acquireHold('crown', 'player-1', T0, T0 + 60_000)).status).toBe('held');
        expect((await store.acquireHold('sceptre', 'player-2', T0, T0 + 60_000)).status).toBe('held');
        expect(await store.getHold('orb', T0)).toBeUndefined();
      });
    });

    describe('queries', () => {
      it('counts granted purchases per item', async () => {
        const store = await freshStore();
        for (let attempt = 0; attempt < 3; attempt += 1) {
          const paid = await insertPaid(store, { itemId: 'gems', kind: 'consumable', attemptId: `attempt-000${attempt}` });
          await store.grant(paid.id, () => undefined, T0 + 2_000);
        }
        const sword = await insertPaid(store, { itemId: 'sword' });
        await store.grant(sword.id, () => undefined, T0 + 2_000);
        await insertPaid(store, { itemId: 'shield' });
        await store.insertPurchase(newPurchase({ itemId: 'helmet' }));
        const other = await insertPaid(store, { itemId: 'gems', playerId: 'player-2', kind: 'consumable', attemptId: 'attempt-9999' });
        await store.grant(other.id, () => undefined, T0 + 2_000);

        expect(await store.entitlements('player-1')).toEqual({ gems: 3, sword: 1 });
        expect(await store.entitlements('player-2')).toEqual({ gems: 1 });
        expect(await store.entitlements('player-3')).toEqual({});
      });

      it('lists only the given player’s purchases', async () => {
        const store = await freshStore();
        const mine = await store.insertPurchase(newPurchase({ playerId: 'player-1', createdAt: T0 }));
        const later = await store.insertPurchase(newPurchase({ playerId: 'player-1', createdAt: T0 + 10 }));
        await store.insertPurchase(newPurchase({ playerId: 'player-2' }));
        await store.insertPurchase(newPurchase({ playerId: 'player-10' }));

        const listed = await store.listByPlayer('player-1');

        expect(listed.map((purchase) => purchase.id)).toEqual([mine.purchase.id, later.purchase.id]);
        for (const purchase of listed) {
          expect(purchase.playerId).toBe('player-1');
        }
        expect(await store.listByPlayer('player-3')).toEqual([]);
      });

      it('lists open purchases whose check is due', async () => {
        const store = await freshStore();
        const dueLater = await store.insertPurchase(newPurchase({ nextCheckAt: T0 + 3_000 }));
        const dueFirst = await store.insertPurchase(newPurchase({ nextCheckAt: T0 + 1_000 }));
        const notDue = await store.insertPurchase(newPurchase({ nextCheckAt: T0 + 9_000 }));
        const cancelled = await store.insertPurchase(newPurchase({ nextCheckAt: T0 + 2_000 }));
        await store.transition({ purchaseId: cancelled.purchase.id, to: 'cancelled', source: 'stream', at: T0 + 100 });
        const paid = await store.insertPurchase(newPurchase({ nextCheckAt: T0 + 1_000 }));
        await store.transition({ purchaseId: paid.purchase.id, to: 'paid', source: 'webhook', at: T0 + 100 });
        const unscheduled = await store.insertPurchase(newPurchase({ nextCheckAt: T0 + 1_000 }));
        await store.scheduleCheck(unscheduled.purchase.id, null, 4);

        const due = await store.listChecksDue(T0 + 5_000, 10);

        expect(due.map((purchase) => purchase.id)).toEqual([dueFirst.purchase.id, cancelled.purchase.id, dueLater.purchase.id]);
        expect((await store.listChecksDue(T0 + 5_000, 2)).map((purchase) => purchase.id)).toEqual([
          dueFirst.purchase.id,
          cancelled.purchase.id,
        ]);
        expect(due.map((purchase) => purchase.id)).not.toContain(notDue.purchase.id);
      });

      it('lists paid purchases whose grant is due', async () => {
        const store = await freshStore();
        const first = await insertPaid(store);
        const second = await insertPaid(store);
        await store.recordGrantFailure(second.id, 'retry later', T0 + 50_000);
        const granted = await insertPaid(store);
        await store.grant(granted.id, () => undefined, T0 + 2_000);
        await store.insertPurchase(newPurchase());

        expect((await store.listGrantsDue(T0 + 1_000, 10)).map((purchase) => purchase.id)).toEqual([first.id]);
        expect((await store.listGrantsDue(T0 + 50_000, 10)).map((purchase) => purchase.id)).toEqual([first.id, second.id]);
        expect(await store.listGrantsDue(T0 + 999, 10)).toEqual([]);
      });

      it('pages through open purchases', async () => {
        const store = await freshStore();
        const openIds: string[] = [];
        for (let index = 0; index < 7; index += 1) {
          const { purchase } = await store.insertPurchase(newPurchase());
          openIds.push(purchase.id);
        }
        await store.transition({ purchaseId: openIds[1], to: 'expired', source: 'expire', at: T0 + 1 });
        await store.transition({ purchaseId: openIds[2], to: 'cancelled', source: 'stream', at: T0 + 1 });
        const paid = await insertPaid(store);
        const failed = await store.insertPurchase(newPurchase());
        await store.transition({ purchaseId: failed.purchase.id, to: 'failed', source: 'poll', failureReason: 'sequencer_rejected', at: T0 + 1 });

        const seen: string[] = [];
        let afterId: string | null = null;
        for (;;) {
          const page: StoredPurchase[] = await store.listOpen(afterId, 3);
          expect(page.length).toBeLessThanOrEqual(3);
          if (page.length === 0) {
            break;
          }
          seen.push(...page.map((purchase) => purchase.id));
          afterId = page[page.length - 1].id;
        }

        // Pages follow the database's text order, which on PostgreSQL depends on the collation.
        expect(new Set(seen).size).toBe(seen.length);
        expect([...seen].sort()).toEqual([...openIds].sort());
        expect(seen).not.toContain(paid.id);
        expect(seen).not.toContain(failed.purchase.id);
      });

      it('schedules checks only for open purchases', async () => {
        const store = await freshStore();
        const { purchase } = await store.insertPurchase(newPurchase());
        const paid = await insertPaid(store);

        await store.scheduleCheck(purchase.id, T0 + 20_000, 3);
        await store.scheduleCheck(paid.id, T0 + 20_000, 3);

        expect(await store.getById(purchase.id)).toMatchObject({ nextCheckAt: T0 + 20_000, checkAttempts: 3 });
        expect(await store.getById(paid.id)).toMatchObject({ nextCheckAt: null, checkAttempts: 0 });
      });

      it('records a review once per kind and intent', async () => {
        const store = await freshStore();
        const review = { kind: 'unknown_intent' as const, intentId: 'intent-unknown', purchaseId: null, payload: '{"amount":0.25}', createdAt: T0 };

        await store.recordReview(review);
        await store.recordReview({ ...review, payload: '{"amount":0.5}', createdAt: T0 + 1_000 });
        await store.recordReview({ ...review, intentId: 'intent-other' });

        const reviews = await store.listReviews();
        expect(reviews.map(({ id: _id, ...rest }) => rest)).toEqual([
          { kind: 'unknown_intent', intentId: 'intent-unknown', purchaseId: null, payload: '{"amount":0.25}', createdAt: T0 },
          { kind: 'unknown_intent', intentId: 'intent-other', purchaseId: null, payload: '{"amount":0.25}', createdAt: T0 },
        ]);
      });
    });

    describe('leases', () => {
      function lease(owner: string, now: number, durationMs = 30_000): Lease {
        return { owner, now, expiresAt: now + durationMs };
      }

      it('claims each due check once', async () => {
        const store = await freshStore();
        const due = await store.insertPurchase(newPurchase({ nextCheckAt: T0 + 5_000 }));
        await store.insertPurchase(newPurchase({ nextCheckAt: T0 + 50_000 }));

        const first = await store.claimChecksDue(lease('instance-a', T0 + 10_000), 10);
        const second = await store.claimChecksDue(lease('instance-b', T0 + 10_000), 10);

        expect(first.map((purchase) => purchase.id)).toEqual([due.purchase.id]);
        expect(second).toEqual([]);
      });

      it('hands an expired lease to another instance', async () => {
        const store = await freshStore();
        const { purchase } = await store.insertPurchase(newPurchase({ nextCheckAt: T0 + 5_000 }));
        await store.claimChecksDue(lease('instance-a', T0 + 10_000, 30_000), 10);

        expect(await store.claimChecksDue(lease('instance-b', T0 + 39_999), 10)).toEqual([]);
        const taken = await store.claimChecksDue(lease('instance-b', T0 + 40_000), 10);
        expect(taken.map((claimed) => claimed.id)).toEqual([purchase.id]);
      });

      it('ends the lease when the check is rescheduled', async () => {
        const store = await freshStore();
        const { purchase } = await store.insertPurchase(newPurchase({ nextCheckAt: T0 + 5_000 }));
        await store.claimChecksDue(lease('instance-a', T0 + 10_000), 10);

        await store.scheduleCheck(purchase.id, T0 + 12_000, 1);

        expect(await store.claimChecksDue(lease('instance-b', T0 + 11_000), 10)).toEqual([]);
        const claimed = await store.claimChecksDue(lease('instance-b', T0 + 12_000), 10);
        expect(claimed.map((item) => item.id)).toEqual([purchase.id]);
      });

      it('ends the lease when the state changes', async () => {
        const store = await freshStore();
        const { purchase } = await store.insertPurchase(newPurchase({ nextCheckAt: T0 + 5_000 }));
        await store.claimChecksDue(lease('instance-a', T0 + 10_000), 10);

        await store.transition({ purchaseId: purchase.id, to: 'paid', source: 'poll', at: T0 + 11_000 });

        const grants = await store.claimGrantsDue(lease('instance-b', T0 + 11_000), 10);
        expect(grants.map((item) => item.id)).toEqual([purchase.id]);
        expect(await store.claimGrantsDue(lease('instance-a', T0 + 11_000), 10)).toEqual([]);
      });

      it('claims due checks once among concurrent stores', async () => {
        const { database, store: first } = await openDatabase();
        const second = await openAgain(database);
        const ids = new Set<string>();
        for (let index = 0; index < 20; index += 1) {
          ids.add((await first.insertPurchase(newPurchase({ nextCheckAt: T0 + index }))).purchase.id);
        }

        const batches = await Promise.all(
          Array.from({ length: 8 }, (_, index) => (index % 2 === 0 ? first : second).claimChecksDue(lease(`instance-${index}`, T0 + 100), 5)),
        );

        const claimed = batches.flat().map((purchase) => purchase.id);
        expect(claimed).toHaveLength(20);
        expect(new Set(claimed)).toEqual(ids);
      });

      it('claims open purchases for reconciliation whatever their schedule', async () => {
        const store = await freshStore();
        const later = await store.insertPurchase(newPurchase({ nextCheckAt: T0 + 500_000 }));
        const paid = await insertPaid(store);
        const leased = await store.insertPurchase(newPurchase({ nextCheckAt: T0 }));
        await store.claimChecksDue(lease('instance-a', T0 + 1_000), 10);

        const claimed = await store.claimOpen([later.purchase.id, paid.id, leased.purchase.id], lease('instance-b', T0 + 2_000));

        expect(claimed.map((purchase) => purchase.id)).toEqual([later.purchase.id]);
        expect(await store.claimOpen([later.purchase.id], lease('instance-c', T0 + 2_000))).toEqual([]);
        expect(await store.claimOpen([], lease('instance-c', T0 + 2_000))).toEqual([]);
      });

      it('rejects a lease that ends before it starts', async () => {
        const store = await freshStore();
        await expectCodePayError(store.claimChecksDue({ owner: 'instance-a', now: T0, expiresAt: T0 }, 10), 'invalid_request');
        await expectCodePayError(store.claimGrantsDue({ owner: '', now: T0, expiresAt: T0 + 1 }, 10), 'invalid_request');
      });
    });

    describe('transaction', () => {
      it('rolls back the game’s writes when the callback throws', async () => {
        const store = await freshStore();
        await createInventory(store);

        await expect(
          store.transaction(async (tx) => {
            await tx.execute('INSERT INTO game_inventory (purchase_id, player_id, item_id) VALUES ($1, $2, $3)', ['p1', 'player-1', 'sword']);
            throw new Error('abort');
          }),
        ).rejects.toThrow('abort');

        expect(await inventoryRows(store)).toEqual([]);
      });

      it('returns the callback’s value', async () => {
        const store = await freshStore();

        const rows = await store.transaction((tx) => tx.query<{ answer: number }>('SELECT $1 + 1 AS answer', [41]));

        expect(Number(rows[0].answer)).toBe(42);
      });
    });

    describe('restart', () => {
      it('keeps everything after reopening', async () => {
        const { database, store } = await openDatabase();
        await createInventory(store);
        const pending = await store.insertPurchase(newPurchase());
        const paid = await insertPaid(store, { itemId: 'crown', kind: 'unique' });
        await store.grant(
          paid.id,
          async (purchase, tx) => {
            await tx.execute('INSERT INTO game_inventory (purchase_id, player_id, item_id) VALUES ($1, $2, $3)', [
              purchase.id,
              purchase.playerId,
              purchase.itemId,
            ]);
          },
          T0 + 2_000,
        );
        await store.acquireHold('sceptre', 'player-2', T0, T0 + 60_000);
        await store.recordReview({ kind: 'unknown_intent', intentId: 'intent-unknown', purchaseId: null, payload: '{}', createdAt: T0 });
        const before = {
          purchases: await store.listByPlayer('player-1'),
          transitions: await store.transitions(paid.id),
          reviews: await store.listReviews(),
        };
        await store.close();
        opened.splice(opened.indexOf(store), 1);

        const reopened = await openAgain(database);

        expect(await reopened.listByPlayer('player-1')).toEqual(before.purchases);
        expect(await reopened.transitions(paid.id)).toEqual(before.transitions);
        expect(await reopened.listReviews()).toEqual(before.reviews);
        expect(await reopened.getById(pending.purchase.id)).toEqual(pending.purchase);
        expect(await reopened.entitlements('player-1')).toEqual({ crown: 1 });
        expect(await reopened.getHold('crown', T0)).toEqual({ status: 'sold_out', ownerPlayerId: 'player-1' });
        expect(await reopened.getHold('sceptre', T0)).toEqual({ status: 'held', expiresAt: T0 + 60_000, holderPlayerId: 'player-2' });
        expect(await inventoryRows(reopened)).toEqual([{ purchase_id: paid.id }]);
        expect((await reopened.insertPurchase(newPurchase({ idempotencyKey: pending.purchase.idempotencyKey }))).created).toBe(false);
      });

      it('runs each migration once', async () => {
        const { database, store } = await openDatabase();
        const again = await openAgain(database);
        await again.migrate();
        await store.migrate();

        const versions = await store.transaction((tx) => tx.query<{ version: number }>('SELECT version FROM code_pay_schema_version ORDER BY version'));
        expect(versions.map((row) => Number(row.version))).toEqual(MIGRATIONS.map((migration) => migration.version));
      });

      it('migrates a new database opened by five stores at once', async () => {
        const database = await target.createDatabase();

        const stores = await Promise.all(Array.from({ length: 5 }, () => database.open()));
        opened.push(...stores);

        const { purchase } = await stores[0].insertPurchase(newPurchase());
        for (const store of stores.slice(1)) {
          expect(await store.getById(purchase.id)).toEqual(purchase);
        }
        const versions = await stores[1].transaction((tx) => tx.query('SELECT version FROM code_pay_schema_version'));
        expect(versions).toHaveLength(MIGRATIONS.length);
      });
    });
  });
}
