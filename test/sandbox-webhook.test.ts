// Webhook delivery: signed JWTs, Code's retry schedule under a time scale,
// and the drop, duplicate and delay faults.
import { paymentIntents } from '@code-wallet/client';
import { ed25519 } from '@noble/curves/ed25519';
import { decodeJwt, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  WEBHOOK_MAX_ATTEMPTS,
  WEBHOOK_RETRY_DELAYS_MS,
  type SandboxHandle,
} from '../server/sandbox/index.js';
import { control, makeTempDir, randomAddress, sleep, startTestSandbox, WebhookReceiver } from './sandbox-helpers.js';

const TIME_SCALE = 0.001;

let sandbox: SandboxHandle;
let temp: ReturnType<typeof makeTempDir>;
let receivers: WebhookReceiver[] = [];
let keyCounter = 0;

beforeEach(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox({ dataFile: `${temp.dir}/sandbox.db`, timeScale: TIME_SCALE });
});

afterEach(async () => {
  await sandbox.close();
  await Promise.all(receivers.map((receiver) => receiver.close()));
  receivers = [];
  temp.remove();
});

async function startReceiver(statuses: number[] = []): Promise<WebhookReceiver> {
  const receiver = await new WebhookReceiver(statuses).start();
  receivers.push(receiver);
  return receiver;
}

async function createPaidIntent(receiver: WebhookReceiver, destination = randomAddress()): Promise<string> {
  keyCounter += 1;
  const created = await paymentIntents.create({
    endpoint: sandbox.endpoint,
    destination,
    amount: 0.25,
    currency: 'usd',
    mode: 'payment',
    idempotencyKey: `webhook-${keyCounter}`,
    webhook: { url: receiver.url },
  });
  await control(sandbox, 'POST', `/intents/${created.id}/pay`);
  return created.id;
}

/** Replaces the sandbox with one whose 24 h schedule runs in about a second. */
async function useFastSchedule(): Promise<void> {
  await sandbox.close();
  sandbox = await startTestSandbox({ dataFile: `${temp.dir}/fast.db`, timeScale: 0.00001 });
}

async function webhookState(intentId: string): Promise<{ state: string; attempts: number }> {
  const { json } = await control(sandbox, 'GET', `/intents/${intentId}`);
  return json.webhook;
}

/** Polls until the intent's webhook reaches `state`. */
async function waitForWebhookState(intentId: string, state: string): Promise<{ state: string; attempts: number }> {
  for (;;) {
    const current = await webhookState(intentId);
    if (current.state === state) {
      return current;
    }
    await sleep(20);
  }
}

describe('webhook delivery', () => {
  it('posts a JWT that verifies with the published key', async () => {
    const receiver = await startReceiver();
    const destination = randomAddress();
    const intentId = await createPaidIntent(receiver, destination);

    await receiver.waitFor(1);
    const [delivery] = receiver.received;
    const key = await importJWK((await control(sandbox, 'GET', '/public-key')).json.jwk, 'EdDSA');
    const { payload } = await jwtVerify(delivery!.body, key);

    expect(delivery!.contentType).toBe('application/jwt');
    expect(decodeProtectedHeader(delivery!.body).alg).toBe('EdDSA');
    expect(payload).toMatchObject({ intent: intentId, currency: 'USD', amount: 0.25, destination, state: 'SUBMITTED', fees: 0 });
    expect(payload.exchangeRate).toBeGreaterThan(0);
    expect(payload.quarks).toBe(2_500_000_000);
    expect(payload.exp).toBeUndefined();
    expect(payload.iat).toBeUndefined();
  });

  it('verifies against the base58 public key', async () => {
    const receiver = await startReceiver();
    await createPaidIntent(receiver);
    await receiver.waitFor(1);

    const bs58 = (await import('bs58')).default;
    const x = Buffer.from(bs58.decode(sandbox.publicKey)).toString('base64url');
    const key = await importJWK({ kty: 'OKP', crv: 'Ed25519', x }, 'EdDSA');

    await expect(jwtVerify(receiver.received[0]!.body, key)).resolves.toBeDefined();
  });

  it('fails verification against another key', async () => {
    const receiver = await startReceiver();
    await createPaidIntent(receiver);
    await receiver.waitFor(1);

    const otherPublicKey = ed25519.getPublicKey(ed25519.utils.randomSecretKey());
    const otherKey = await importJWK({ kty: 'OKP', crv: 'Ed25519', x: Buffer.from(otherPublicKey).toString('base64url') }, 'EdDSA');

    await expect(jwtVerify(receiver.received[0]!.body, otherKey)).rejects.toThrow('signature verification failed');
  });

  it('sends nothing for an intent without a webhook', async () => {
    const receiver = await startReceiver();
    const created = await paymentIntents.create({
      endpoint: sandbox.endpoint,
      destination: randomAddress(),
      amount: 0.25,
      currency: 'usd',
      mode: 'payment',
      idempotencyKey: 'webhook-none',
    });
    await control(sandbox, 'POST', `/intents/${created.id}/pay`);
    await sleep(100);

    expect(receiver.received).toHaveLength(0);
    expect(sandbox.stats().webhookDeliveries).toBe(0);
  });

  it('retries after 500 twice on the schedule', async () => {
    const receiver = await startReceiver([500, 500, 200]);
    const intentId = await createPaidIntent(receiver);

    await receiver.waitFor(3);
    const done = await waitForWebhookState(intentId, 'delivered');

    expect(receiver.received).toHaveLength(3);
    expect(done.attempts).toBe(3);
    const [first, second, third] = receiver.received.map((delivery) => delivery.receivedAt);
    expect(second! - first!).toBeGreaterThanOrEqual(WEBHOOK_RETRY_DELAYS_MS[0]! * TIME_SCALE);
    expect(third! - second!).toBeGreaterThanOrEqual(WEBHOOK_RETRY_DELAYS_MS[1]! * TIME_SCALE);
    const bodies = new Set(receiver.received.map((delivery) => delivery.body));
    expect(bodies.size).toBe(1);
  });

  it('gives up after the last attempt', async () => {
    await useFastSchedule();
    const receiver = await startReceiver(Array.from({ length: 20 }, () => 503));
    const intentId = await createPaidIntent(receiver);

    const failed = await waitForWebhookState(intentId, 'failed');
    await sleep(50);

    expect(failed.attempts).toBe(WEBHOOK_MAX_ATTEMPTS);
    expect(receiver.received).toHaveLength(WEBHOOK_MAX_ATTEMPTS);
  });

  it('delivers more webhooks than run at once', async () => {
    const receiver = await startReceiver();
    const intentIds: string[] = [];
    for (let i = 0; i < 40; i += 1) {
      const created = await paymentIntents.create({
        endpoint: sandbox.endpoint,
        destination: randomAddress(),
        amount: 0.25,
        currency: 'usd',
        mode: 'payment',
        idempotencyKey: `webhook-burst-${i}`,
        webhook: { url: receiver.url },
      });
      intentIds.push(created.id);
    }

    // Paying in one synchronous loop queues all 40 deliveries at once.
    for (const intentId of intentIds) {
      sandbox.context.pay(intentId);
    }
    await receiver.waitFor(40);

    const delivered = receiver.received.map((delivery) => decodeJwt(delivery.body).intent);
    expect(new Set(delivered).size).toBe(40);
    for (const intentId of intentIds) {
      expect(delivered).toContain(intentId);
    }
  });

  it('treats a non-200 success status as a failure', async () => {
    const receiver = await startReceiver([204, 200]);
    const intentId = await createPaidIntent(receiver);

    await waitForWebhookState(intentId, 'delivered');

    expect(receiver.received).toHaveLength(2);
  });
});

describe('webhook faults', () => {
  it('drops deliveries and retries them', async () => {
    await control(sandbox, 'POST', '/faults', { webhook: { drop: 2 } });
    const receiver = await startReceiver();
    const intentId = await createPaidIntent(receiver);

    const done = await waitForWebhookState(intentId, 'delivered');

    expect(done.attempts).toBe(3);
    expect(receiver.received).toHaveLength(1);
  });

  it('drops every delivery until given up', async () => {
    await useFastSchedule();
    await control(sandbox, 'POST', '/faults', { webhook: { drop: 'always' } });
    const receiver = await startReceiver();
    const intentId = await createPaidIntent(receiver);

    const failed = await waitForWebhookState(intentId, 'failed');

    expect(failed.attempts).toBe(WEBHOOK_MAX_ATTEMPTS);
    expect(receiver.received).toHaveLength(0);
  });

  it('duplicates a delivery', async () => {
    await control(sandbox, 'POST', '/faults', { webhook: { duplicate: 1 } });
    const receiver = await startReceiver();
    const intentId = await createPaidIntent(receiver);

    await receiver.waitFor(2);
    await waitForWebhookState(intentId, 'delivered');

    expect(receiver.received).toHaveLength(2);
    expect(receiver.received[0]!.body).toBe(receiver.received[1]!.body);
    expect(sandbox.stats().webhookDeliveries).toBe(2);
  });

  it('delays a delivery', async () => {
    await control(sandbox, 'POST', '/faults', { webhook: { delayMs: 300 } });
    const receiver = await startReceiver();
    const paidAt = Date.now();
    await createPaidIntent(receiver);

    await receiver.waitFor(1);

    expect(receiver.received[0]!.receivedAt - paidAt).toBeGreaterThanOrEqual(290);
  });
});
