import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { MemoryStorage } from '../plugin/attempts.js';
import { CodePayClient, type CodePayClientOptions } from '../plugin/client.js';
import { CodePayClientError } from '../plugin/errors.js';
import {
  CONNECTION_CHANGED,
  ENTITLEMENTS_CHANGED,
  PURCHASE_CANCELLED,
  PURCHASE_GRANTED,
  PURCHASE_PAID,
  PURCHASE_PENDING,
  SYNC_COMPLETED,
  type CodePayEventMap,
} from '../plugin/events.js';
import { FakeKit } from './plugin-fake-kit.js';

const silent = pino({ level: 'silent' });

let kit: FakeKit;
let serverUrl: string;
const clients: CodePayClient[] = [];

function createClient(options: Partial<CodePayClientOptions> = {}): CodePayClient {
  const client = new CodePayClient({
    serverUrl,
    auth: 'token-alice',
    storage: new MemoryStorage(),
    ackTimeoutMs: 2000,
    socketOptions: { transports: ['websocket'], reconnectionDelay: 50, reconnectionDelayMax: 100 },
    logger: silent,
    ...options,
  });
  clients.push(client);
  client.connect();
  return client;
}

function nextEvent<T>(client: CodePayClient, event: keyof CodePayEventMap, predicate: (payload: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve) => {
    const listener = (payload: T) => {
      if (!predicate(payload)) return;
      client.off(event, listener as never);
      resolve(payload);
    };
    client.on(event, listener as never);
  });
}

beforeEach(async () => {
  kit = new FakeKit();
  serverUrl = await kit.listen();
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await kit.close();
});

describe('CodePayClient', () => {
  it('stores attempt id before sending', async () => {
    const storage = new MemoryStorage();
    const seen: (string | null)[] = [];
    kit.onPurchaseRequest = (request) => {
      seen.push(storage.getItem('codePay:attempt:gems'));
      expect(request.attemptId).toBeDefined();
    };

    const client = createClient({ storage });
    const purchase = await client.requestPurchase('gems');

    expect(seen).toHaveLength(1);
    expect(seen[0]).toBe(purchase.attemptId);
    expect(purchase.attemptId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('reuses attempt id after reload', async () => {
    const storage = new MemoryStorage();
    const first = await createClient({ storage }).requestPurchase('gems');
    clients[0]!.destroy();

    const second = await createClient({ storage }).requestPurchase('gems');

    expect(second.id).toBe(first.id);
    expect(second.attemptId).toBe(first.attemptId);
    expect(kit.purchases.size).toBe(1);
  });

  it('clears attempt id once granted', async () => {
    const storage = new MemoryStorage();
    const client = createClient({ storage });
    const first = await client.requestPurchase('gems');

    const granted = client.waitForGrant(first.id);
    kit.payAndGrant(first.id);
    await granted;

    expect(storage.getItem('codePay:attempt:gems')).toBeNull();
    const second = await client.requestPurchase('gems');
    expect(second.id).not.toBe(first.id);
    expect(second.attemptId).not.toBe(first.attemptId);
    expect(kit.purchases.size).toBe(2);
  });

  it('resends after a dropped acknowledgement', async () => {
    const client = createClient({ ackTimeoutMs: 300 });
    await client.catalog();
    kit.dropNextAcks('purchase', 1);

    const purchase = await client.requestPurchase('gems');

    const requests = kit.requests.filter((request) => request.event === 'purchase');
    expect(requests).toHaveLength(2);
    expect(requests[0]!.payload).toEqual(requests[1]!.payload);
    expect(kit.purchases.size).toBe(1);
    expect(purchase.attemptId).toBe((requests[0]!.payload as { attemptId: string }).attemptId);
  });

  it('resends after a disconnect before the acknowledgement', async () => {
    const client = createClient();
    await client.catalog();
    kit.disconnectBeforeNextAcks('purchase', 1);

    const purchase = await client.requestPurchase('gems');

    const requests = kit.requests.filter((request) => request.event === 'purchase');
    expect(requests).toHaveLength(2);
    expect(requests[0]!.payload).toEqual(requests[1]!.payload);
    expect(kit.purchases.size).toBe(1);
    expect(kit.purchases.get(purchase.id)?.attemptId).toBe(purchase.attemptId);
  });

  it('fails with timed_out after every retry', async () => {
    const client = createClient({ maxRetries: 2, ackTimeoutMs: 100 });
    await client.catalog();
    kit.dropNextAcks('purchase', 10);

    const error = await client.requestPurchase('sword').catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(CodePayClientError);
    expect((error as CodePayClientError).code).toBe('timed_out');
    expect(kit.count('purchase')).toBe(3);
  });

  it('syncs and revalidates on reconnect', async () => {
    const client = createClient();
    const firstSync = nextEvent(client, SYNC_COMPLETED);
    const purchase = await client.requestPurchase('sword');
    await firstSync;
    const syncsBefore = kit.count('sync');
    const revalidationsBefore = kit.count('revalidate');

    const states: boolean[] = [];
    client.on(CONNECTION_CHANGED, ({ connected }) => states.push(connected));
    const resynced = nextEvent(client, SYNC_COMPLETED);
    kit.dropConnections();
    await resynced;

    expect(states).toEqual([false, true]);
    expect(kit.count('sync')).toBe(syncsBefore + 1);
    const revalidated = kit.requests.slice(revalidationsBefore).filter((request) => request.event === 'revalidate');
    expect(revalidated.map((request) => request.payload)).toContainEqual({ purchaseId: purchase.id });
  });

  it('revalidates the rest after a failure', async () => {
    const client = createClient();
    const sword = await client.requestPurchase('sword');
    const crown = await client.requestPurchase('crown');
    kit.purchases.delete(sword.id);

    const results = await client.revalidate();

    expect(results.map((purchase) => purchase.id)).toEqual([crown.id]);
    const revalidated = kit.requests.filter((request) => request.event === 'revalidate').map((request) => request.payload);
    expect(revalidated).toContainEqual({ purchaseId: sword.id });
    expect(revalidated).toContainEqual({ purchaseId: crown.id });
  });

  it('emits state events in order', async () => {
    const client = createClient();
    const events: string[] = [];
    for (const event of [PURCHASE_PENDING, PURCHASE_PAID, PURCHASE_GRANTED] as const) {
      client.on(event, (purchase) => events.push(`${event} ${(purchase as { id: string }).id}`));
    }
    const entitlementChanges: Record<string, number>[] = [];
    client.on(ENTITLEMENTS_CHANGED, ({ entitlements }) => entitlementChanges.push(entitlements));

    const purchase = await client.requestPurchase('sword');
    const granted = client.waitForGrant(purchase.id);
    kit.payAndGrant(purchase.id);
    const result = await granted;

    expect(result.state).toBe('granted');
    expect(events).toEqual([`${PURCHASE_PENDING} ${purchase.id}`, `${PURCHASE_PAID} ${purchase.id}`, `${PURCHASE_GRANTED} ${purchase.id}`]);
    expect(client.owns('sword')).toBe(true);
    expect(entitlementChanges.at(-1)).toEqual({ sword: 1 });
  });

  it('rejects with the protocol code', async () => {
    const client = createClient();
    const purchase = await client.requestPurchase('sword');
    kit.payAndGrant(purchase.id);

    const error = await client.requestPurchase('sword').catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(CodePayClientError);
    expect((error as CodePayClientError).code).toBe('already_owned');
    expect((error as CodePayClientError).itemId).toBe('sword');
  });

  it('rejects unknown and invalid item ids', async () => {
    const client = createClient();

    const unknown = await client.requestPurchase('shield').catch((caught: unknown) => caught);
    const invalid = await client.requestPurchase('bad id!').catch((caught: unknown) => caught);

    expect((unknown as CodePayClientError).code).toBe('unknown_item');
    expect((invalid as CodePayClientError).code).toBe('invalid_request');
    expect(kit.count('purchase')).toBe(0);
  });

  it('ignores an invalid push', async () => {
    const client = createClient();
    const purchase = await client.requestPurchase('sword');

    kit.io.of('/code-pay').to('alice').emit('purchase:updated', { id: purchase.id, state: 'granted' } as never);
    await client.sync();

    expect(client.getPurchase(purchase.id)?.state).toBe('pending');
    expect(client.owns('sword')).toBe(false);
  });

  it('ignores an update older than the stored one', async () => {
    const client = createClient();
    const pending = await client.requestPurchase('sword');
    const granted = client.waitForGrant(pending.id);
    kit.payAndGrant(pending.id);
    await granted;

    kit.io.of('/code-pay').to('alice').emit('purchase:updated', pending);
    await client.sync();

    expect(client.getPurchase(pending.id)?.state).toBe('granted');
  });

  it('reports a decline with the hint', async () => {
    const client = createClient();
    const purchase = await client.requestPurchase('sword');
    const cancelled = nextEvent<{ id: string; state: string }>(client, PURCHASE_CANCELLED);

    const result = await client.reportDeclined(purchase.id);

    expect(kit.requests.at(-1)!.payload).toEqual({ purchaseId: purchase.id, hint: 'cancelled' });
    expect(result.state).toBe('cancelled');
    expect((await cancelled).id).toBe(purchase.id);
  });

  it('rejects a wait when aborted', async () => {
    const client = createClient();
    const purchase = await client.requestPurchase('sword');
    const controller = new AbortController();

    const waiting = client.waitForGrant(purchase.id, controller.signal);
    controller.abort(new CodePayClientError('closed', 'closed by the player', { purchase }));
    const error = await waiting.catch((caught: unknown) => caught);

    expect((error as CodePayClientError).code).toBe('closed');
  });

  it('grants a payment that arrives after the wait ended', async () => {
    const client = createClient();
    const purchase = await client.requestPurchase('sword');
    const controller = new AbortController();
    const waiting = client.waitForGrant(purchase.id, controller.signal).catch(() => undefined);
    controller.abort();
    await waiting;

    const granted = nextEvent<{ id: string }>(client, PURCHASE_GRANTED);
    kit.payAndGrant(purchase.id);

    expect((await granted).id).toBe(purchase.id);
    expect(client.owns('sword')).toBe(true);
  });

  it('fails requests when the token is rejected', async () => {
    const client = createClient({ auth: async () => 'token-nobody' });

    const error = await client.catalog().catch((caught: unknown) => caught);

    expect((error as CodePayClientError).code).toBe('unauthenticated');
  });

  it('calls the auth function on every connect', async () => {
    let calls = 0;
    const client = createClient({
      auth: () => {
        calls += 1;
        return Promise.resolve('token-bob');
      },
    });
    await client.catalog();
    const resynced = nextEvent(client, SYNC_COMPLETED);
    kit.dropConnections();
    await resynced;

    expect(calls).toBe(2);
    expect(kit.requests.every((request) => request.playerId === 'bob')).toBe(true);
  });

  it('rejects an invalid catalog acknowledgement', async () => {
    await kit.close();
    kit = new FakeKit({ catalogExtra: { items: [{ id: 'sword', kind: 'weapon', name: 'Sword', amount: -1, currency: 'usd' }] } });
    serverUrl = await kit.listen();
    const client = createClient();

    const error = await client.catalog().catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(CodePayClientError);
    expect((error as CodePayClientError).code).toBe('invalid_response');
    expect((error as CodePayClientError).message).toContain('items.0.kind');
    expect((error as CodePayClientError).message).toContain('items.0.amount');
  });

  it('rejects invalid options', () => {
    expect(() => new CodePayClient({ serverUrl, auth: 42 as never })).toThrow(CodePayClientError);
    expect(() => new CodePayClient({ serverUrl, auth: 'x', ackTimeoutMs: -1 })).toThrow(/ackTimeoutMs/);
  });
});
