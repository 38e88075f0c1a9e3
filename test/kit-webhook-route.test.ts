// The webhook route end to end: every forgery gets a 400 response and
// changes nothing; a valid token confirms; a valid token for an unknown intent is
// recorded for review. Also the health and metrics routes.
//
// The kit is configured with a test signing key, so the tests can sign valid
// and near-valid tokens; the sandbox still serves as the sequencer.

import { join } from 'node:path';

import bs58 from 'bs58';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { createCodePay, generateTestWebhookKeys, signTestWebhook, type CodePay, type StoredPurchase } from '../server/index.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import { GrantRecorder, kitOptions, makeTempDir, randomAddress, startKitServer, startTestSandbox, waitForState, type KitServer } from './kit-helpers.js';

let sandbox: SandboxHandle;
let temp: { dir: string; remove: () => void };
let kit: CodePay;
let server: KitServer;
let grants: GrantRecorder;
let purchase: StoredPurchase;
const keys = generateTestWebhookKeys();
const destination = randomAddress();

/** The claims Code would sign for `purchase`, with overrides. */
function claimsFor(target: StoredPurchase, overrides: Record<string, unknown> = {}) {
  return { intent: target.intentId, amount: target.amount, currency: target.currency, destination: target.destination, ...overrides };
}

async function postWebhook(body: string, contentType = 'application/jwt'): Promise<{ status: number; body: { error?: { reason: string } } }> {
  const response = await fetch(`${server.url}/code-pay/webhook`, { method: 'POST', headers: { 'content-type': contentType }, body });
  return { status: response.status, body: (await response.json()) as { error?: { reason: string } } };
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Asserts the purchase is still pending with no grant and only its creation in the log. */
async function expectUnchanged(target: StoredPurchase): Promise<void> {
  const row = await kit.store.getById(target.id);
  expect(row?.state).toBe('pending');
  expect(row?.paidAt).toBeNull();
  expect((await kit.store.transitions(target.id)).map((entry) => entry.to)).toEqual(['pending']);
  expect(grants.countFor(target.id)).toBe(0);
}

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox(temp.dir);
  grants = new GrantRecorder();
  kit = await createCodePay({
    ...kitOptions({ sandbox, dbFile: join(temp.dir, 'webhook.db'), destination, grants }),
    gameId: 'webhook-route',
    sequencer: { endpoint: sandbox.endpoint, publicKey: keys.publicKey },
    polling: { intervalMs: 60_000, firstCheckAfterMs: 60_000 },
  });
  server = await startKitServer(kit);
});

beforeEach(async () => {
  purchase = await kit.createPurchase('alice', { itemId: 'gems-10', attemptId: `attempt-${Date.now()}-${Math.random().toString(36).slice(2)}` });
});

afterAll(async () => {
  await server.close();
  await kit.close();
  await sandbox.close();
  temp.remove();
});

describe('webhook forgeries', () => {
  it('rejects algorithm none', async () => {
    const token = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ ...claimsFor(purchase), state: 'SUBMITTED' })}.`;

    const response = await postWebhook(token);

    expect(response.status).toBe(400);
    await expectUnchanged(purchase);
  });

  it('rejects HS256 keyed with the public key', async () => {
    const token = await new SignJWT({ ...claimsFor(purchase), currency: 'USD', state: 'SUBMITTED', exchangeRate: 1, quarks: 1, fees: 0 })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(bs58.decode(keys.publicKey));

    const response = await postWebhook(token);

    expect(response.status).toBe(400);
    await expectUnchanged(purchase);
  });

  it('rejects another Ed25519 key', async () => {
    const other = generateTestWebhookKeys();
    const token = await signTestWebhook(claimsFor(purchase), other.privateKey);

    const response = await postWebhook(token);

    expect(response.status).toBe(400);
    expect(response.body.error?.reason).toBe('signature');
    await expectUnchanged(purchase);
  });

  it('rejects tampered claims', async () => {
    const other = await kit.createPurchase('bob', { itemId: 'gems-10', attemptId: 'attempt-tampered' });
    const valid = await signTestWebhook(claimsFor(other), keys.privateKey);
    const [header, , signature] = valid.split('.');
    const forged = `${header}.${base64url({ ...claimsFor(purchase), currency: 'USD', state: 'SUBMITTED', exchangeRate: 1, quarks: 1, fees: 0 })}.${signature}`;

    const response = await postWebhook(forged);

    expect(response.status).toBe(400);
    expect(response.body.error?.reason).toBe('signature');
    await expectUnchanged(purchase);
  });

  it('rejects a wrong amount', async () => {
    const token = await signTestWebhook(claimsFor(purchase, { amount: 0.01 }), keys.privateKey);

    const response = await postWebhook(token);

    expect(response.status).toBe(400);
    expect(response.body.error?.reason).toBe('mismatch_amount');
    await expectUnchanged(purchase);
  });

  it('rejects a wrong destination', async () => {
    const token = await signTestWebhook(claimsFor(purchase, { destination: randomAddress() }), keys.privateKey);

    const response = await postWebhook(token);

    expect(response.status).toBe(400);
    expect(response.body.error?.reason).toBe('mismatch_destination');
    await expectUnchanged(purchase);
  });

  it('rejects a wrong currency', async () => {
    const token = await signTestWebhook(claimsFor(purchase, { currency: 'eur' }), keys.privateKey);

    const response = await postWebhook(token);

    expect(response.status).toBe(400);
    expect(response.body.error?.reason).toBe('mismatch_currency');
    await expectUnchanged(purchase);
  });

  it('rejects a state other than SUBMITTED', async () => {
    const token = await signTestWebhook(claimsFor(purchase, { state: 'PENDING' }), keys.privateKey);

    const response = await postWebhook(token);

    expect(response.status).toBe(400);
    expect(response.body.error?.reason).toBe('state');
    await expectUnchanged(purchase);
  });

  it('rejects garbage', async () => {
    for (const body of ['', 'not a token', 'a.b.c', '{"intent":"x"}', '\u0000\u0001\u0002']) {
      const response = await postWebhook(body);
      expect(response.status, JSON.stringify(body)).toBe(400);
    }
    await expectUnchanged(purchase);
  });

  it('rejects a wrong content type', async () => {
    const token = await signTestWebhook(claimsFor(purchase), keys.privateKey);

    const response = await postWebhook(token, 'application/json');

    expect(response.status).toBe(400);
    expect(response.body.error?.reason).toBe('content_type');
    await expectUnchanged(purchase);
  });

  it('rejects an oversized body', async () => {
    const token = await signTestWebhook(claimsFor(purchase, { padding: 'x'.repeat(64 * 1024) }), keys.privateKey);

    const response = await postWebhook(token);

    expect(response.status).toBe(413);
    expect(response.body.error?.reason).toBe('too_large');
    await expectUnchanged(purchase);
  });
});

describe('valid webhooks', () => {
  it('confirms and grants the purchase', async () => {
    const token = await signTestWebhook(claimsFor(purchase), keys.privateKey);

    const response = await postWebhook(token);
    await waitForState(kit, purchase.id, 'granted');
    const replay = await postWebhook(token);

    expect(response.status).toBe(200);
    expect(replay.status).toBe(200);
    expect(grants.countFor(purchase.id)).toBe(1);
  });

  it('records an unknown intent for review', async () => {
    const unknownIntent = randomAddress();
    const token = await signTestWebhook({ intent: unknownIntent, amount: 0.1, currency: 'usd', destination }, keys.privateKey);

    const response = await postWebhook(token);

    expect(response.status).toBe(200);
    const reviews = await kit.store.listReviews();
    const review = reviews.find((entry) => entry.intentId === unknownIntent);
    expect(review?.kind).toBe('unknown_intent');
    expect(review?.purchaseId).toBeNull();
  });
});

describe('health and metrics', () => {
  it('answers the health check', async () => {
    const response = await fetch(`${server.url}/healthz`);

    expect(response.status).toBe(200);
  });

  it('serves Prometheus text', async () => {
    const response = await fetch(`${server.url}/metrics`);
    const text = await response.text();

    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    expect(text).toContain('code_pay_purchase_transitions_total');
    expect(text).toMatch(/code_pay_webhook_rejections_total\{reason="signature"\} [1-9]/);
    expect(text).toMatch(/code_pay_webhook_rejections_total\{reason="mismatch_amount"\} [1-9]/);
    expect(text).toMatch(/code_pay_purchase_creation_seconds_count [1-9]/);
    expect(text).toMatch(/code_pay_purchase_confirmation_seconds_count\{source="webhook"\} [1-9]/);
    expect(text).toMatch(/code_pay_purchase_transitions_total\{from="paid",to="granted"\} [1-9]/);
    expect(text).toMatch(/code_pay_purchases\{state="granted"\} 1\n/);
    expect(text).toMatch(/code_pay_purchases\{state="failed"\} 0\n/);
  });
});
