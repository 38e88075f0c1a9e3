// Hostile input beyond payload fuzzing: forged and malformed webhooks (one
// log line with its reason per rejection, no state change), a valid webhook
// replayed many times at once (one transition, one grant), and authorization
// attacks on the socket (tampered and expired tokens, another player's
// purchase ids, one attempt id used by two players).

import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { ed25519 } from '@noble/curves/ed25519';
import bs58 from 'bs58';
import { SignJWT, UnsecuredJWT, jwtVerify, errors as joseErrors } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { createCodePay, generateTestWebhookKeys, signTestWebhook, type CodePay, type StoredPurchase } from '../server/index.js';
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
  waitForState,
  type KitServer,
  type TestClient,
} from './kit-helpers.js';

interface LogLine {
  level: number;
  msg: string;
  reason?: string;
  [field: string]: unknown;
}

/** Every line the kit logged, parsed. */
const logLines: LogLine[] = [];
const rawLog: string[] = [];
const capture = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString().split('\n')) {
      if (line.trim() !== '') {
        rawLog.push(line);
        logLines.push(JSON.parse(line) as LogLine);
      }
    }
    done();
  },
});

const TOKEN_SECRET = new TextEncoder().encode('reliability-hostile-token-secret-0123456789');
const keys = generateTestWebhookKeys();
const destination = randomAddress();

let sandbox: SandboxHandle;
let temp: { dir: string; remove: () => void };
let kit: CodePay;
let server: KitServer;
let grants: GrantRecorder;

/** Signs a player token the way a game would: HS256 with an expiry. */
function playerToken(playerId: string, expiresIn: string | number = '1h'): Promise<string> {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(playerId).setIssuedAt().setExpirationTime(expiresIn).sign(TOKEN_SECRET);
}

async function postWebhook(body: string | Buffer, contentType = 'application/jwt'): Promise<number> {
  const payload = typeof body === 'string' ? body : new Uint8Array(body);
  const response = await fetch(`${server.url}/code-pay/webhook`, { method: 'POST', headers: { 'content-type': contentType }, body: payload });
  await response.arrayBuffer();
  return response.status;
}

function claimsFor(target: StoredPurchase, overrides: Record<string, unknown> = {}) {
  return { intent: target.intentId, amount: target.amount, currency: target.currency, destination: target.destination, ...overrides };
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** A digest of every kit table, so a test can show that nothing changed. */
async function storeDigest(): Promise<string> {
  const tables = ['code_pay_purchases', 'code_pay_transitions', 'code_pay_holds', 'code_pay_unique_owners', 'code_pay_reviews'];
  const parts: string[] = [];
  for (const table of tables) {
    parts.push(JSON.stringify(await kit.store.transaction((tx) => tx.query(`SELECT * FROM ${table} ORDER BY 1`))));
  }
  return parts.join('\n');
}

function newAttemptId(): string {
  return `attempt-${randomUUID()}`;
}

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox(temp.dir);
  grants = new GrantRecorder();
  kit = await createCodePay({
    ...kitOptions({ sandbox, dbFile: join(temp.dir, 'hostile.db'), destination, grants }),
    gameId: 'reliability-hostile',
    sequencer: { endpoint: sandbox.endpoint, publicKey: keys.publicKey },
    // No polling, so only the requests under test change the store.
    polling: { intervalMs: 3_600_000, firstCheckAfterMs: 3_600_000, maxCheckIntervalMs: 3_600_000 },
    rateLimit: { burst: 10_000, perSecond: 10_000 },
    logger: pino({ level: 'info' }, capture),
    authenticate: async (handshake) => {
      const token: unknown = handshake.auth.token;
      if (typeof token !== 'string') {
        throw new Error('missing token');
      }
      const { payload } = await jwtVerify(token, TOKEN_SECRET, { algorithms: ['HS256'] });
      if (typeof payload.sub !== 'string') {
        throw new joseErrors.JWTInvalid('no subject');
      }
      return payload.sub;
    },
  });
  server = await startKitServer(kit);
});

afterAll(async () => {
  await server?.close();
  await kit?.close();
  await sandbox?.close();
  temp?.remove();
});

describe('webhook forgeries', () => {
  let target: StoredPurchase;

  beforeEach(async () => {
    target = await kit.createPurchase('alice', { itemId: 'gems-10', attemptId: newAttemptId() });
  });

  it('rejects every forgery once with its reason', async () => {
    const valid = await signTestWebhook(claimsFor(target), keys.privateKey);
    const [header, payload, signature] = valid.split('.') as [string, string, string];
    const publicKeyBytes = bs58.decode(keys.publicKey);
    const otherKey = bs58.encode(ed25519.utils.randomSecretKey());

    const forgeries: Array<{ name: string; body: string | Buffer; contentType?: string; reason: string }> = [
      { name: 'algorithm none', body: new UnsecuredJWT(claimsFor(target, { state: 'SUBMITTED' })).encode(), reason: 'algorithm' },
      {
        name: 'HS256 keyed with the public key',
        body: await new SignJWT(claimsFor(target, { state: 'SUBMITTED', exchangeRate: 1, quarks: 1, fees: 0 }))
          .setProtectedHeader({ alg: 'HS256' })
          .sign(publicKeyBytes),
        reason: 'algorithm',
      },
      { name: 'another Ed25519 key', body: await signTestWebhook(claimsFor(target), otherKey), reason: 'signature' },
      { name: 'truncated', body: valid.slice(0, valid.length - 10), reason: 'signature' },
      { name: 'signature cut off', body: `${header}.${payload}.`, reason: 'signature' },
      { name: 'two parts', body: `${header}.${payload}`, reason: 'malformed' },
      { name: 'oversized', body: `${valid}${'A'.repeat(64 * 1024)}`, reason: 'too_large' },
      { name: 'wrong content type', body: valid, contentType: 'application/json', reason: 'content_type' },
      { name: 'no content type', body: valid, contentType: '', reason: 'content_type' },
      { name: 'JSON body', body: JSON.stringify(claimsFor(target)), contentType: 'application/jwt', reason: 'malformed' },
      {
        name: 'tampered amount',
        body: `${header}.${base64url({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), amount: 0.01 })}.${signature}`,
        reason: 'signature',
      },
      {
        name: 'tampered intent',
        body: `${header}.${base64url({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), intent: randomAddress() })}.${signature}`,
        reason: 'signature',
      },
      { name: 'header not JSON', body: `${Buffer.from('not json').toString('base64url')}.${payload}.${signature}`, reason: 'malformed' },
      { name: 'binary garbage', body: Buffer.from(Array.from({ length: 300 }, (_, index) => (index * 37) % 256)), reason: 'malformed' },
      { name: 'state PENDING', body: await signTestWebhook(claimsFor(target, { state: 'PENDING' }), keys.privateKey), reason: 'state' },
      { name: 'claims missing', body: await signTestWebhook({ intent: target.intentId, currency: 'usd', amount: 0.1, destination: 'x' }, keys.privateKey), reason: 'claims' },
      { name: 'wrong amount, signed', body: await signTestWebhook(claimsFor(target, { amount: 0.11 }), keys.privateKey), reason: 'mismatch_amount' },
      {
        name: 'wrong destination, signed',
        body: await signTestWebhook(claimsFor(target, { destination: randomAddress() }), keys.privateKey),
        reason: 'mismatch_destination',
      },
      { name: 'wrong currency, signed', body: await signTestWebhook(claimsFor(target, { currency: 'eur' }), keys.privateKey), reason: 'mismatch_currency' },
    ];

    const before = await storeDigest();
    for (const forgery of forgeries) {
      const linesBefore = logLines.length;
      const status = await postWebhook(forgery.body, forgery.contentType ?? 'application/jwt');
      expect(status, forgery.name).toBeGreaterThanOrEqual(400);
      expect(status, forgery.name).toBeLessThan(500);

      const logged = logLines.slice(linesBefore).filter((line) => line.level >= 40);
      expect(logged.length, `${forgery.name}: ${JSON.stringify(logged)}`).toBe(1);
      expect(logged[0]!.reason, forgery.name).toBe(forgery.reason);
    }

    expect(await storeDigest()).toBe(before);
    expect(grants.countFor(target.id)).toBe(0);
    // No token reaches the log, whole or in part.
    expect(rawLog.some((line) => line.includes(signature) || line.includes(payload))).toBe(false);
  });

  it('grants once under a concurrent replay', async () => {
    const token = await signTestWebhook(claimsFor(target), keys.privateKey);

    const statuses = await Promise.all(Array.from({ length: 50 }, () => postWebhook(token)));
    expect(statuses.every((status) => status === 200)).toBe(true);

    await waitForState(kit, target.id, 'granted');
    const again = await Promise.all(Array.from({ length: 20 }, () => postWebhook(token)));
    expect(again.every((status) => status === 200)).toBe(true);
    await kit.runConfirmations();

    const transitions = (await kit.store.transitions(target.id)).map((entry) => entry.to);
    expect(transitions).toEqual(['pending', 'paid', 'granted']);
    expect(grants.countFor(target.id)).toBe(1);
  });
});

describe('authorization', () => {
  let alice: TestClient;
  let mallory: TestClient;
  let alicePurchase: StoredPurchase;

  beforeAll(async () => {
    alice = await connectPlayer(server.url, await playerToken('alice'));
    mallory = await connectPlayer(server.url, await playerToken('mallory'));
    alicePurchase = await kit.createPurchase('alice', { itemId: 'sword' });
  });

  afterAll(() => {
    alice?.close();
    mallory?.close();
  });

  it('rejects tampered and expired tokens', async () => {
    const valid = await playerToken('alice');
    const [header, , signature] = valid.split('.') as [string, string, string];
    const tokens = {
      expired: await playerToken('alice', Math.floor(Date.now() / 1000) - 60),
      'tampered subject': `${header}.${base64url({ sub: 'mallory', iat: 1, exp: 9_999_999_999 })}.${signature}`,
      'algorithm none': new UnsecuredJWT({ sub: 'alice' }).setExpirationTime('1h').encode(),
      'another secret': await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setExpirationTime('1h').sign(new Uint8Array(32)),
      truncated: valid.slice(0, -5),
      empty: '',
      'not a string': 42,
      oversized: 'x'.repeat(20_000),
    };

    for (const [name, token] of Object.entries(tokens)) {
      const error = await connectPlayer(server.url, token).then(
        (socket) => {
          socket.close();
          return undefined;
        },
        (reason: unknown) => reason as Error & { data?: { code?: string } },
      );
      expect(error, `${name} connected`).toBeDefined();
      expect(error?.data?.code, name).toBe('unauthenticated');
    }
    // The log never carries a token.
    expect(rawLog.some((line) => line.includes(signature))).toBe(false);
  });

  it('hides another player\'s purchase', async () => {
    const before = await storeDigest();
    for (const id of [alicePurchase.id, alicePurchase.intentId, alicePurchase.idempotencyKey, alicePurchase.clientSecret]) {
      const ack = await request<{ ok: boolean; error?: { code: string; message: string } }>(mallory, 'revalidate', { purchaseId: id });
      expect(ack.ok).toBe(false);
      expect(ack.error?.code).toBe('not_found');
      // The response may repeat the id mallory sent, and nothing else of alice's purchase.
      const secrets = [alicePurchase.id, alicePurchase.intentId, alicePurchase.idempotencyKey, alicePurchase.clientSecret].filter((value) => value !== id);
      for (const secret of secrets) {
        expect(JSON.stringify(ack)).not.toContain(secret);
      }
      const cancel = await request<{ ok: boolean; error?: { code: string } }>(mallory, 'revalidate', { purchaseId: id, hint: 'cancelled' });
      expect(cancel.error?.code).toBe('not_found');
    }

    const sync = await request<{ ok: true; purchases: unknown[] }>(mallory, 'sync');
    expect(JSON.stringify(sync)).not.toContain(alicePurchase.id);
    expect(await storeDigest()).toBe(before);
    expect((await kit.store.getById(alicePurchase.id))?.state).toBe('pending');
  });

  it('keeps one attempt id apart across players', async () => {
    const attemptId = newAttemptId();
    const aliceGems = (await kit.entitlements('alice'))['gems-10'] ?? 0;
    const fromAlice = await request<{ ok: true; purchase: { id: string; intentId: string; clientSecret: string } }>(alice, 'purchase', {
      itemId: 'gems-10',
      attemptId,
    });
    const fromMallory = await request<{ ok: true; purchase: { id: string; intentId: string; clientSecret: string } }>(mallory, 'purchase', {
      itemId: 'gems-10',
      attemptId,
    });
    expect(fromAlice.ok).toBe(true);
    expect(fromMallory.ok).toBe(true);
    expect(fromMallory.purchase.id).not.toBe(fromAlice.purchase.id);
    expect(fromMallory.purchase.intentId).not.toBe(fromAlice.purchase.intentId);
    expect(fromMallory.purchase.clientSecret).not.toBe(fromAlice.purchase.clientSecret);

    // Paying mallory's intent grants mallory, never alice.
    await payIntent(sandbox, fromMallory.purchase.intentId);
    await request(mallory, 'revalidate', { purchaseId: fromMallory.purchase.id });
    await waitForState(kit, fromMallory.purchase.id, 'granted');
    expect((await kit.store.getById(fromAlice.purchase.id))?.state).toBe('pending');
    expect((await kit.entitlements('alice'))['gems-10'] ?? 0).toBe(aliceGems);
    expect((await kit.entitlements('mallory'))['gems-10']).toBe(1);
  });

  it('pushes updates only to their owner', async () => {
    const seenByMallory: string[] = [];
    mallory.on('purchase:updated', (purchase) => seenByMallory.push(purchase.id));

    const purchase = await kit.createPurchase('alice', { itemId: 'gems-10', attemptId: newAttemptId() });
    await payIntent(sandbox, purchase.intentId);
    await kit.revalidate('alice', purchase.id);
    await waitForState(kit, purchase.id, 'granted');
    // A round trip on mallory's socket, so a push sent before it would have arrived.
    await request(mallory, 'catalog');
    expect(seenByMallory).not.toContain(purchase.id);
  });
});
