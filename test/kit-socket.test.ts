// The `/code-pay` namespace with real socket.io clients: authentication,
// schema checks, acknowledgements, rate limits, player isolation, pushes and
// sync.

import { join } from 'node:path';

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import type { CatalogAck, Purchase, PurchaseAck, SyncAck } from '../protocol/index.js';
import { createCodePay, type CodePay, type CodePayOptions } from '../server/index.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import {
  GrantRecorder,
  connectPlayer,
  kitOptions,
  makeTempDir,
  payIntent,
  randomAddress,
  request,
  startKitServer,
  startTestSandbox,
  waitFor,
  type KitServer,
  type TestClient,
} from './kit-helpers.js';

let sandbox: SandboxHandle;
let temp: { dir: string; remove: () => void };
let counter = 0;
const cleanups: Array<() => Promise<void> | void> = [];

async function startKit(overrides: Partial<CodePayOptions> = {}): Promise<{ kit: CodePay; server: KitServer; grants: GrantRecorder }> {
  counter += 1;
  const grants = new GrantRecorder();
  const kit = await createCodePay(
    kitOptions({
      sandbox,
      dbFile: join(temp.dir, `socket-${counter}.db`),
      destination: randomAddress(),
      grants,
      overrides: { gameId: `socket-${counter}`, ...overrides },
    }),
  );
  const server = await startKitServer(kit);
  cleanups.push(async () => {
    await server.close();
    await kit.close();
  });
  return { kit, server, grants };
}

async function connect(server: KitServer, token: unknown): Promise<TestClient> {
  const socket = await connectPlayer(server.url, token);
  cleanups.push(() => {
    socket.close();
  });
  return socket;
}

/** The keys of the protocol `Purchase`; an ack must carry no others. */
const PURCHASE_KEYS = ['amount', 'attemptId', 'clientSecret', 'createdAt', 'currency', 'destination', 'id', 'intentId', 'itemId', 'kind', 'state', 'updatedAt'];

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox(temp.dir);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) {
    await cleanup();
  }
});

afterAll(async () => {
  await sandbox.close();
  temp.remove();
});

describe('authentication', () => {
  it('rejects a bad token', async () => {
    const { server } = await startKit();

    const error = await connectPlayer(server.url, 'nonsense').catch((caught: Error & { data?: { code: string } }) => caught);

    expect(error).toBeInstanceOf(Error);
    expect((error as Error & { data?: { code: string } }).data?.code).toBe('unauthenticated');
  });

  it('rejects an empty player id', async () => {
    const { server } = await startKit({ authenticate: async () => '' });

    const error = await connectPlayer(server.url, 'player:alice').catch((caught: Error & { data?: { code: string } }) => caught);

    expect((error as Error & { data?: { code: string } }).data?.code).toBe('unauthenticated');
  });

  it('accepts an async authenticate', async () => {
    const { server } = await startKit({ authenticate: async (handshake) => `async-${String(handshake.auth.token)}` });

    const socket = await connect(server, 'alice');
    const ack = await request<SyncAck>(socket, 'sync');

    expect(ack.ok).toBe(true);
  });
});

describe('requests', () => {
  it('publishes the catalog', async () => {
    const { server } = await startKit();
    const socket = await connect(server, 'player:alice');

    const ack = await request<CatalogAck>(socket, 'catalog');

    expect(ack).toEqual({
      ok: true,
      streamUrl: `${sandbox.endpoint.replace(/^http/, 'ws')}/ws`,
      items: [
        { id: 'sword', kind: 'permanent', name: 'Sword', amount: 0.25, currency: 'usd' },
        { id: 'gems-10', kind: 'consumable', name: '10 gems', amount: 0.1, currency: 'usd' },
        { id: 'crown', kind: 'unique', name: 'The crown', amount: 0.5, currency: 'usd' },
      ],
    });
  });

  it('acknowledges a purchase with the protocol shape', async () => {
    const { server } = await startKit();
    const socket = await connect(server, 'player:alice');

    const ack = await request<PurchaseAck>(socket, 'purchase', { itemId: 'gems-10', attemptId: 'attempt-0001' });

    expect(ack.ok).toBe(true);
    const purchase = (ack as { purchase: Purchase }).purchase;
    expect(Object.keys(purchase).sort()).toEqual(PURCHASE_KEYS);
    expect(purchase.state).toBe('pending');
    expect(purchase.attemptId).toBe('attempt-0001');
  });

  it('answers invalid payloads with invalid_request', async () => {
    const { kit, server } = await startKit();
    const socket = await connect(server, 'player:alice');
    const invalid: unknown[][] = [
      [],
      [null],
      ['sword'],
      [42],
      [{}],
      [{ itemId: 7 }],
      [{ itemId: 'sword', extra: true }],
      [{ itemId: 'x'.repeat(65) }],
      [{ itemId: 'has space' }],
      [{ itemId: 'gems-10', attemptId: 'x'.repeat(10_000) }],
      [{ itemId: 'sword' }, { itemId: 'sword' }],
    ];

    for (const payload of invalid) {
      const ack = await request<PurchaseAck>(socket, 'purchase', ...payload);
      expect(ack, JSON.stringify(payload).slice(0, 80)).toMatchObject({ ok: false, error: { code: 'invalid_request' } });
    }
    for (const payload of [[{ purchaseId: 42 }], [{ purchaseId: 'a', hint: 'paid' }], [{}]]) {
      const ack = await request<PurchaseAck>(socket, 'revalidate', ...payload);
      expect(ack, JSON.stringify(payload)).toMatchObject({ ok: false, error: { code: 'invalid_request' } });
    }
    const syncAck = await request<SyncAck>(socket, 'sync', 'unexpected');
    expect(syncAck).toMatchObject({ ok: false, error: { code: 'invalid_request' } });

    expect(await kit.listPurchases('alice')).toEqual([]);
  });

  it('survives a request without an acknowledgement', async () => {
    const { kit, server } = await startKit();
    const socket = await connect(server, 'player:alice');

    (socket.emit as (event: string, ...args: unknown[]) => void)('purchase', { itemId: 'sword' });
    (socket.emit as (event: string, ...args: unknown[]) => void)('sync');
    const ack = await request<SyncAck>(socket, 'sync');

    expect(ack).toMatchObject({ ok: true, purchases: [] });
    expect(await kit.listPurchases('alice')).toEqual([]);
  });

  it('passes service errors through with their code', async () => {
    const { server } = await startKit();
    const socket = await connect(server, 'player:alice');

    const unknown = await request<PurchaseAck>(socket, 'purchase', { itemId: 'no-such-item' });
    const missingAttempt = await request<PurchaseAck>(socket, 'purchase', { itemId: 'gems-10' });

    expect(unknown).toMatchObject({ ok: false, error: { code: 'unknown_item' } });
    expect(missingAttempt).toMatchObject({ ok: false, error: { code: 'invalid_request' } });
  });

  it('rate-limits a player', async () => {
    const { server } = await startKit({ rateLimit: { burst: 3, perSecond: 0.001 } });
    const socket = await connect(server, 'player:alice');
    const other = await connect(server, 'player:bob');

    const acks = [];
    for (let index = 0; index < 5; index += 1) {
      acks.push(await request<SyncAck>(socket, 'sync'));
    }
    const otherAck = await request<SyncAck>(other, 'sync');

    expect(acks.map((ack) => ack.ok)).toEqual([true, true, true, false, false]);
    expect(acks[4]).toMatchObject({ ok: false, error: { code: 'rate_limited' } });
    expect(otherAck.ok).toBe(true);
  });
});

describe('player isolation', () => {
  it('hides another player\'s purchase', async () => {
    const { server } = await startKit();
    const alice = await connect(server, 'player:alice');
    const bob = await connect(server, 'player:bob');
    const created = await request<PurchaseAck>(alice, 'purchase', { itemId: 'sword' });
    const purchaseId = (created as { purchase: Purchase }).purchase.id;

    const stolen = await request<PurchaseAck>(bob, 'revalidate', { purchaseId });
    const bobSync = await request<SyncAck>(bob, 'sync');

    expect(stolen).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect(bobSync).toEqual({ ok: true, purchases: [], entitlements: {} });
  });

  it('pushes updates to every socket of the player only', async () => {
    const { server } = await startKit();
    const phone = await connect(server, 'player:alice');
    const laptop = await connect(server, 'player:alice');
    const bob = await connect(server, 'player:bob');
    const seen = { phone: [] as Purchase[], laptop: [] as Purchase[], bob: [] as Purchase[] };
    phone.on('purchase:updated', (purchase) => seen.phone.push(purchase));
    laptop.on('purchase:updated', (purchase) => seen.laptop.push(purchase));
    bob.on('purchase:updated', (purchase) => seen.bob.push(purchase));

    const created = await request<PurchaseAck>(phone, 'purchase', { itemId: 'sword' });
    const purchase = (created as { purchase: Purchase }).purchase;
    await payIntent(sandbox, purchase.intentId);
    await waitFor('the granted push on both sockets', () =>
      seen.phone.some((update) => update.state === 'granted') && seen.laptop.some((update) => update.state === 'granted') ? true : undefined,
    );

    const granted = seen.laptop.find((update) => update.state === 'granted');
    expect(Object.keys(granted ?? {}).sort()).toEqual(PURCHASE_KEYS.filter((key) => key !== 'attemptId'));
    expect(seen.bob).toEqual([]);

    const sync = await request<SyncAck>(laptop, 'sync');
    expect(sync).toMatchObject({ ok: true, entitlements: { sword: 1 } });
    expect((sync as { purchases: Purchase[] }).purchases.map((entry) => [entry.id, entry.state])).toEqual([[purchase.id, 'granted']]);
  });

  it('revalidates the player\'s own purchase', async () => {
    const { server } = await startKit({ polling: { intervalMs: 60_000, firstCheckAfterMs: 60_000 } });
    const socket = await connect(server, 'player:alice');
    const created = await request<PurchaseAck>(socket, 'purchase', { itemId: 'sword' });
    const purchase = (created as { purchase: Purchase }).purchase;
    await payIntent(sandbox, purchase.intentId);

    const ack = await request<PurchaseAck>(socket, 'revalidate', { purchaseId: purchase.id });

    expect(ack).toMatchObject({ ok: true, purchase: { id: purchase.id, state: 'granted' } });
  });
});
