// Confirmation paths against the sandbox sequencer: webhooks, polling after a
// dropped webhook, late payments after expiry, grant retries, revalidate and
// the start-up reconciliation.

import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { createCodePay, type CodePay, type CodePayOptions } from '../server/index.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import {
  GrantRecorder,
  kitOptions,
  makeTempDir,
  payIntent,
  randomAddress,
  setFaults,
  startKitServer,
  startTestSandbox,
  waitFor,
  waitForState,
  controlPost,
  type KitServer,
} from './kit-helpers.js';

let sandbox: SandboxHandle;
let temp: { dir: string; remove: () => void };
const cleanups: Array<() => Promise<void>> = [];
let counter = 0;

/** Polling that never runs within a test, so only the path under test confirms. */
const NO_POLLING: CodePayOptions['polling'] = { intervalMs: 60_000, firstCheckAfterMs: 60_000 };

interface Started {
  kit: CodePay;
  grants: GrantRecorder;
  dbFile: string;
  gameId: string;
  server: KitServer;
}

const DESTINATION = randomAddress();

/** Starts a kit behind an HTTP server whose webhook route the sandbox calls. */
async function startKit(
  options: { overrides?: Partial<CodePayOptions>; webhook?: boolean; dbFile?: string; grants?: GrantRecorder; gameId?: string } = {},
): Promise<Started> {
  counter += 1;
  const grants = options.grants ?? new GrantRecorder();
  const dbFile = options.dbFile ?? join(temp.dir, `confirm-${counter}.db`);
  const gameId = options.gameId ?? `confirm-${counter}`;

  const server = await startKitServer();
  const webhookUrl = options.webhook === false ? undefined : `${server.url}/code-pay/webhook`;
  const kit = await createCodePay(
    kitOptions({ sandbox, dbFile, destination: DESTINATION, grants, overrides: { gameId, webhookUrl, ...options.overrides } }),
  );
  server.mount(kit);
  cleanups.push(async () => {
    await server.close();
    await kit.close();
  });
  return { kit, grants, dbFile, gameId, server };
}

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox(temp.dir);
});

afterEach(async () => {
  await setFaults(sandbox, { clear: true });
  for (const cleanup of cleanups.splice(0).reverse()) {
    await cleanup();
  }
});

afterAll(async () => {
  await sandbox.close();
  temp.remove();
});

describe('webhook', () => {
  it('confirms and grants a payment', async () => {
    const { kit, grants } = await startKit({ overrides: { polling: NO_POLLING } });
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });

    await payIntent(sandbox, purchase.intentId);
    const granted = await waitForState(kit, purchase.id, 'granted');

    expect(granted.paidAt).not.toBeNull();
    expect(grants.countFor(purchase.id)).toBe(1);
    const sources = (await kit.store.transitions(purchase.id)).map((entry) => [entry.to, entry.source]);
    expect(sources).toContainEqual(['paid', 'webhook']);
  });

  it('grants once for duplicate deliveries', async () => {
    const { kit, grants, server } = await startKit({ overrides: { polling: NO_POLLING } });
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });
    await setFaults(sandbox, { webhook: { duplicate: 'always' } });

    await payIntent(sandbox, purchase.intentId);
    await waitForState(kit, purchase.id, 'granted');
    await waitFor('the duplicate delivery', () => (server.webhookStatuses.length >= 2 ? true : undefined));

    expect(server.webhookStatuses).toEqual([200, 200]);

    expect(grants.countFor(purchase.id)).toBe(1);
  });
});

describe('polling', () => {
  it('recovers a dropped webhook', async () => {
    const { kit, grants } = await startKit();
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });
    await setFaults(sandbox, { webhook: { drop: 'always' } });

    await payIntent(sandbox, purchase.intentId);
    await waitForState(kit, purchase.id, 'granted');

    expect(grants.countFor(purchase.id)).toBe(1);
    const sources = (await kit.store.transitions(purchase.id)).map((entry) => [entry.to, entry.source]);
    expect(sources).toContainEqual(['paid', 'poll']);
  });

  it('keeps polling through a GetStatus outage', async () => {
    const { kit } = await startKit({ webhook: false });
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });
    await setFaults(sandbox, { getStatus: { fail: 3 } });

    await payIntent(sandbox, purchase.intentId);
    await waitForState(kit, purchase.id, 'granted');
  });

  it('grants a late payment after expiry', async () => {
    const { kit, grants } = await startKit({
      webhook: false,
      overrides: {
        polling: { intervalMs: 20, firstCheckAfterMs: 20, maxCheckIntervalMs: 40, expireAfterMs: 150, lateCheckIntervalMs: 50 },
      },
    });
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });
    await waitForState(kit, purchase.id, 'expired');

    await payIntent(sandbox, purchase.intentId);
    await waitForState(kit, purchase.id, 'granted');

    expect(grants.countFor(purchase.id)).toBe(1);
    const moves = (await kit.store.transitions(purchase.id)).map((entry) => entry.to);
    expect(moves).toEqual(['pending', 'expired', 'paid', 'granted']);
  });
});

describe('grants', () => {
  it('retries a throwing handler and grants once', async () => {
    const grants = new GrantRecorder();
    grants.failures = 3;
    const { kit } = await startKit({ grants });
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });

    await payIntent(sandbox, purchase.intentId);
    const granted = await waitForState(kit, purchase.id, 'granted');

    expect(grants.calls).toBe(4);
    expect(grants.countFor(purchase.id)).toBe(1);
    expect(granted.grantAttempts).toBeGreaterThanOrEqual(3);
    await kit.runConfirmations();
    await kit.revalidate('alice', purchase.id);
    expect(grants.calls).toBe(4);
  });

  it('keeps a failing purchase paid', async () => {
    const grants = new GrantRecorder();
    grants.failures = Number.MAX_SAFE_INTEGER;
    const { kit } = await startKit({ grants });
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });

    await payIntent(sandbox, purchase.intentId);
    const paid = await waitFor('two failed grant attempts', async () => {
      const row = await kit.store.getById(purchase.id);
      return row && row.grantAttempts >= 2 ? row : undefined;
    });

    expect(paid.state).toBe('paid');
    expect(paid.lastGrantError).toBe('inventory service is down');
    expect(grants.countFor(purchase.id)).toBe(0);
  });
});

describe('grants after a restart', () => {
  it('grants a paid purchase left by a crash', async () => {
    const failing = new GrantRecorder();
    failing.failures = Number.MAX_SAFE_INTEGER;
    const first = await startKit({ webhook: false, grants: failing });
    const purchase = await first.kit.createPurchase('alice', { itemId: 'sword' });
    await payIntent(sandbox, purchase.intentId);
    await waitForState(first.kit, purchase.id, 'paid');
    await first.kit.close();

    const grants = new GrantRecorder();
    const restarted = await startKit({ webhook: false, dbFile: first.dbFile, gameId: first.gameId, grants });
    await waitForState(restarted.kit, purchase.id, 'granted');

    expect(grants.countFor(purchase.id)).toBe(1);
    expect(failing.countFor(purchase.id)).toBe(0);
  });
});

describe('revalidate', () => {
  it('confirms a payment on demand', async () => {
    const { kit, grants } = await startKit({ webhook: false, overrides: { polling: NO_POLLING } });
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });

    const unpaid = await kit.revalidate('alice', purchase.id);
    expect(unpaid.state).toBe('pending');

    await payIntent(sandbox, purchase.intentId);
    const granted = await kit.revalidate('alice', purchase.id);

    expect(granted.state).toBe('granted');
    expect(grants.countFor(purchase.id)).toBe(1);
  });

  it('records a decline hint, then a late payment', async () => {
    const { kit, grants } = await startKit({ webhook: false, overrides: { polling: NO_POLLING } });
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });
    await controlPost(sandbox, `/intents/${purchase.intentId}/reject`);

    const cancelled = await kit.revalidate('alice', purchase.id, 'cancelled');
    expect(cancelled.state).toBe('cancelled');

    const repeated = await kit.revalidate('alice', purchase.id, 'cancelled');
    expect(repeated.state).toBe('cancelled');
    expect(grants.countFor(purchase.id)).toBe(0);

    await payIntent(sandbox, purchase.intentId);
    const paidLate = await kit.revalidate('alice', purchase.id);
    expect(paidLate.state).toBe('granted');
    expect(grants.countFor(purchase.id)).toBe(1);
  });

  it('ignores a decline hint for a paid intent', async () => {
    const { kit } = await startKit({ webhook: false, overrides: { polling: NO_POLLING } });
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });
    await payIntent(sandbox, purchase.intentId);

    const result = await kit.revalidate('alice', purchase.id, 'cancelled');

    expect(result.state).toBe('granted');
  });

  it('hides another player\'s purchase', async () => {
    const { kit } = await startKit({ webhook: false, overrides: { polling: NO_POLLING } });
    const purchase = await kit.createPurchase('alice', { itemId: 'sword' });

    await expect(kit.revalidate('bob', purchase.id)).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('reconciliation', () => {
  it('grants a payment made while the kit was down', async () => {
    const first = await startKit({ webhook: false, overrides: { polling: NO_POLLING } });
    const purchase = await first.kit.createPurchase('alice', { itemId: 'sword' });
    await first.kit.close();

    await payIntent(sandbox, purchase.intentId);
    const grants = new GrantRecorder();
    const restarted = await startKit({
      webhook: false,
      dbFile: first.dbFile,
      gameId: first.gameId,
      grants,
      overrides: { polling: NO_POLLING },
    });
    await restarted.kit.reconciled;

    const row = await restarted.kit.store.getById(purchase.id);
    expect(row?.state).toBe('granted');
    expect(grants.countFor(purchase.id)).toBe(1);
    const sources = (await restarted.kit.store.transitions(purchase.id)).map((entry) => [entry.to, entry.source]);
    expect(sources).toContainEqual(['paid', 'reconcile']);
  });
});
