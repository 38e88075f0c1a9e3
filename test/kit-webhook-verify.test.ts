// Webhook verification: each forgery a game server must reject, the claim
// comparison with the pinned purchase, and real webhooks from the sandbox.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

import bs58 from 'bs58';
import { CompactSign, SignJWT, UnsecuredJWT, importJWK } from 'jose';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';

import { ConfigError } from '../server/errors.js';
import { deriveIntent } from '../server/intent.js';
import { startSandbox } from '../server/sandbox/index.js';
import { createSequencerClient } from '../server/sequencer.js';
import {
  checkClaimsAgainstPurchase,
  createWebhookVerifier,
  generateTestWebhookKeys,
  signTestWebhook,
  WebhookRejectedError,
  type WebhookClaims,
  type WebhookRejectionReason,
} from '../server/webhook.js';

const keys = generateTestWebhookKeys();
const verifier = createWebhookVerifier({ publicKey: keys.publicKey });

const intentId = bs58.encode(randomBytes(32));
const destination = bs58.encode(randomBytes(32));

const validClaims = {
  intent: intentId,
  currency: 'USD',
  amount: 0.25,
  exchangeRate: 0.00001,
  quarks: 2_500_000_000,
  fees: 0,
  destination,
  state: 'SUBMITTED',
};

const purchase = { intentId, destination, amount: 0.25, currency: 'usd' };

function encodeSegment(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Awaits a verification that must fail and returns the error. */
async function rejection(body: string | Buffer, ...contentType: [string | undefined] | []): Promise<WebhookRejectedError> {
  const header = contentType.length === 0 ? 'application/jwt' : contentType[0];
  const error = await verifier.verify(body, header).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(WebhookRejectedError);
  return error as WebhookRejectedError;
}

describe('webhook verification', () => {
  it('accepts a token signed with the configured key', async () => {
    const token = await signTestWebhook(validClaims, keys.privateKey);

    const claims = await verifier.verify(token, 'application/jwt');

    expect(claims.intent).toBe(intentId);
    expect(claims.currency).toBe('usd');
    expect(claims.amount).toBe(0.25);
    expect(claims.destination).toBe(destination);
    expect(claims.state).toBe('SUBMITTED');
  });

  it('accepts a Buffer body and a charset parameter', async () => {
    const token = await signTestWebhook(validClaims, keys.privateKey);

    const claims = await verifier.verify(Buffer.from(token), 'application/jwt; charset=utf-8');

    expect(claims.intent).toBe(intentId);
  });

  it('rejects algorithm none', async () => {
    const token = new UnsecuredJWT(validClaims).encode();

    const error = await rejection(token);

    expect(error.reason).toBe('algorithm');
  });

  it('rejects HS256 keyed with the public key', async () => {
    const publicKeyBytes = bs58.decode(keys.publicKey);
    for (const secret of [publicKeyBytes, new TextEncoder().encode(keys.publicKey)]) {
      const token = await new SignJWT(validClaims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(secret);

      const error = await rejection(token);

      expect(error.reason).toBe('algorithm');
    }
  });

  it('rejects another Ed25519 key', async () => {
    const other = generateTestWebhookKeys();
    const token = await signTestWebhook(validClaims, other.privateKey);

    const error = await rejection(token);

    expect(error.reason).toBe('signature');
    expect(error.message).toContain(keys.publicKey);
  });

  it('rejects tampered claims', async () => {
    const token = await signTestWebhook(validClaims, keys.privateKey);
    const [header, , signature] = token.split('.');
    const tampered = `${header}.${encodeSegment({ ...validClaims, amount: 0.01 })}.${signature}`;

    const error = await rejection(tampered);

    expect(error.reason).toBe('signature');
  });

  it('rejects a state other than SUBMITTED', async () => {
    for (const state of ['PENDING', 'REVOKED', 'submitted']) {
      const token = await signTestWebhook({ ...validClaims, state }, keys.privateKey);

      const error = await rejection(token);

      expect(error.reason).toBe('state');
    }
  });

  it('rejects a missing state', async () => {
    const { state: _state, ...withoutState } = validClaims;
    const key = await importJWK(
      { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(bs58.decode(keys.publicKey)).toString('base64url'), d: Buffer.from(bs58.decode(keys.privateKey)).toString('base64url') },
      'EdDSA',
    );
    const token = await new CompactSign(new TextEncoder().encode(JSON.stringify(withoutState))).setProtectedHeader({ alg: 'EdDSA' }).sign(key);

    const error = await rejection(token);

    expect(error.reason).toBe('claims');
  });

  it('rejects invalid claims', async () => {
    const invalid: Record<string, unknown>[] = [
      { intent: 'not-a-key' },
      { destination: bs58.encode(randomBytes(31)) },
      { amount: '0.25' },
      { amount: -1 },
      { currency: 'dollars' },
      { quarks: -5 },
    ];
    for (const override of invalid) {
      const token = await signTestWebhook({ ...validClaims, ...override } as typeof validClaims, keys.privateKey);

      const error = await rejection(token);

      expect(error.reason, JSON.stringify(override)).toBe('claims');
    }
  });

  it('rejects garbage', async () => {
    for (const body of ['', 'hello', '{"intent":"x"}', 'a.b', '%%%.%%%.%%%', 'a.b.c.d']) {
      const error = await rejection(body);

      expect(error.reason, body).toBe('malformed');
    }
  });

  it('rejects a header that is not JSON', async () => {
    const token = await signTestWebhook(validClaims, keys.privateKey);
    const [, payload, signature] = token.split('.');

    const error = await rejection(`${Buffer.from('not json').toString('base64url')}.${payload}.${signature}`);

    expect(error.reason).toBe('malformed');
  });

  it('rejects a truncated token', async () => {
    const token = await signTestWebhook(validClaims, keys.privateKey);
    const truncations = [token.slice(0, token.lastIndexOf('.') + 1), token.slice(0, token.length - 10), token.slice(0, token.indexOf('.'))];
    const reasons: WebhookRejectionReason[] = [];
    for (const truncated of truncations) {
      reasons.push((await rejection(truncated)).reason);
    }

    expect(reasons[0]).toBe('signature');
    expect(reasons[1]).toBe('signature');
    expect(reasons[2]).toBe('malformed');
  });

  it('rejects an oversized body', async () => {
    const token = await signTestWebhook({ ...validClaims, padding: 'x'.repeat(20_000) }, keys.privateKey);

    const error = await rejection(token);

    expect(error.reason).toBe('too_large');
  });

  it('rejects a wrong content type', async () => {
    const token = await signTestWebhook(validClaims, keys.privateKey);
    for (const contentType of [undefined, 'application/json', 'text/plain', 'application/jwt-bearer']) {
      const error = await rejection(token, contentType);

      expect(error.reason, String(contentType)).toBe('content_type');
    }
  });

  it('messages name the likely cause', async () => {
    const malformed = await rejection('{"intent":"x"}');
    expect(malformed.message).toContain('raw request body');

    const token = await signTestWebhook(validClaims, keys.privateKey);
    const wrongType = await rejection(token, 'application/json');
    expect(wrongType.message).toContain('application/jwt');
  });

  it('rejects an invalid configured key', () => {
    expect(() => createWebhookVerifier({ publicKey: 'abc' })).toThrow(ConfigError);
    expect(() => createWebhookVerifier({ publicKey: 'abc' })).toThrow(/32-byte Ed25519 public key/);
    expect(() => createWebhookVerifier({ publicKey: '0OIl' })).toThrow(/not base58/);
  });

  it('defaults to Code production key', () => {
    expect(createWebhookVerifier().publicKey).toBe('codeHy87wGD5oMRLG75qKqsSi1vWE3oxNyYmXo5F9YR');
  });
});

describe('claims against purchase', () => {
  const claims: WebhookClaims = { ...validClaims, currency: 'usd', state: 'SUBMITTED' };

  it('matching claims return undefined', () => {
    expect(checkClaimsAgainstPurchase(claims, purchase)).toBeUndefined();
  });

  it('upper-case purchase currency matches', () => {
    expect(checkClaimsAgainstPurchase(claims, { ...purchase, currency: 'USD' })).toBeUndefined();
  });

  it('wrong amount is a mismatch', () => {
    expect(checkClaimsAgainstPurchase({ ...claims, amount: 0.24 }, purchase)).toBe('amount');
    expect(checkClaimsAgainstPurchase({ ...claims, amount: 2.5 }, purchase)).toBe('amount');
  });

  it('wrong destination is a mismatch', () => {
    expect(checkClaimsAgainstPurchase({ ...claims, destination: bs58.encode(randomBytes(32)) }, purchase)).toBe('destination');
  });

  it('wrong currency is a mismatch', () => {
    expect(checkClaimsAgainstPurchase({ ...claims, currency: 'eur' }, purchase)).toBe('currency');
  });

  it('wrong intent is a mismatch', () => {
    expect(checkClaimsAgainstPurchase({ ...claims, intent: bs58.encode(randomBytes(32)) }, purchase)).toBe('intent');
  });

  it('amount compares in hundredths', () => {
    expect(checkClaimsAgainstPurchase({ ...claims, amount: 0.1 + 0.15 }, purchase)).toBeUndefined();
  });
});

describe('sandbox webhooks', () => {
  it('verify with the sandbox key only', async () => {
    const received: { body: string; contentType: string | undefined }[] = [];
    const receiver = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        received.push({ body: Buffer.concat(chunks).toString('utf8'), contentType: request.headers['content-type'] });
        response.end('ok');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const { port } = receiver.address() as AddressInfo;

    const sandbox = await startSandbox({ port: 0, dataFile: ':memory:', timeScale: 0.001, logger: pino({ level: 'silent' }) });
    const client = createSequencerClient({ endpoint: sandbox.endpoint, logger: pino({ level: 'silent' }) });
    try {
      const intent = deriveIntent({ idempotencyKey: `kit-webhook-${randomBytes(8).toString('hex')}`, amount: 0.5, currency: 'eur', destination });
      await client.sendMessage(intent.sendMessageRequest, { intentId: intent.intentId });
      expect(await client.registerWebhook(intent.intentId, `http://127.0.0.1:${port}/code-pay/webhook`)).toBe('ok');
      const paid = await fetch(`${sandbox.url}/control/intents/${intent.intentId}/pay`, { method: 'POST' });
      expect(paid.status).toBe(200);

      for (let waited = 0; received.length === 0 && waited < 5_000; waited += 20) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(received.length).toBeGreaterThan(0);
      const delivery = received[0]!;

      const claims = await createWebhookVerifier({ publicKey: sandbox.publicKey }).verify(delivery.body, delivery.contentType);
      expect(claims.intent).toBe(intent.intentId);
      expect(checkClaimsAgainstPurchase(claims, { intentId: intent.intentId, destination, amount: 0.5, currency: 'eur' })).toBeUndefined();

      const error = await verifier.verify(delivery.body, delivery.contentType).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(WebhookRejectedError);
      expect((error as WebhookRejectedError).reason).toBe('signature');
    } finally {
      client.close();
      await sandbox.close();
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    }
  });
});
