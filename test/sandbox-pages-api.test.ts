// The HTTP side of the sandbox pages without a browser: the wallet API the
// pages call, the elements page routes and the page shown when the browser
// bundles were not built.

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import bs58 from 'bs58';
import * as proto from '@code-wallet/rpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { paymentIntents } from '@code-wallet/client';
import type { SandboxHandle } from '../server/sandbox/index.js';
import { createSandboxPagesRouter } from '../server/sandbox/pages.js';
import { FakeSandboxContext } from './sandbox-stream-fake-context.js';
import { ensureSandboxBundles } from './sandbox-pages-bundles.js';
import { makeTempDir, randomAddress, silentLogger, startTestSandbox } from './sandbox-helpers.js';

let sandbox: SandboxHandle;
let tempDir: { dir: string; remove: () => void };
let keyCounter = 0;

beforeAll(async () => {
  await ensureSandboxBundles();
  tempDir = makeTempDir();
  sandbox = await startTestSandbox({ dataFile: join(tempDir.dir, 'sandbox.db') });
});

afterAll(async () => {
  await sandbox.close();
  tempDir.remove();
});

async function createIntent(): Promise<string> {
  keyCounter += 1;
  const created = await paymentIntents.create({
    endpoint: sandbox.endpoint,
    mode: 'payment',
    destination: randomAddress(),
    amount: 0.25,
    currency: 'usd',
    idempotencyKey: `pages-api-test-${process.pid}-${Date.now()}-${keyCounter}`,
  });
  return created.id;
}

async function post(path: string): Promise<{ status: number; body: { intent?: { status: string }; error?: { code: string; message: string } } }> {
  const response = await fetch(`${sandbox.url}${path}`, { method: 'POST' });
  return { status: response.status, body: (await response.json()) as never };
}

describe('wallet API', () => {
  it('lists and reads intents', async () => {
    const intentId = await createIntent();

    const list = (await (await fetch(`${sandbox.url}/wallet/api/intents`)).json()) as { intents: Array<{ intentId: string }> };
    expect(list.intents.map((intent) => intent.intentId)).toContain(intentId);

    const one = await fetch(`${sandbox.url}/wallet/api/intents/${intentId}`);
    expect(one.status).toBe(200);
    expect(((await one.json()) as { intent: { status: string } }).intent.status).toBe('pending');
  });

  it('pays once and rejects a second payment', async () => {
    const intentId = await createIntent();

    const first = await post(`/wallet/api/intents/${intentId}/pay`);
    expect(first.status).toBe(200);
    expect(first.body.intent?.status).toBe('paid');

    const second = await post(`/sdk/wallet/api/intents/${intentId}/pay`);
    expect(second.status).toBe(409);
    expect(second.body.error?.code).toBe('conflict');

    const ledger = (await (await fetch(`${sandbox.url}/control/ledger`)).json()) as
      | { entries?: Array<{ intentId: string }> }
      | Array<{ intentId: string }>;
    const entries = Array.isArray(ledger) ? ledger : (ledger.entries ?? []);
    expect(entries.filter((entry) => entry.intentId === intentId)).toHaveLength(1);
  });

  it('rejects bad requests', async () => {
    const unknownIntent = await post(`/wallet/api/intents/${randomAddress()}/pay`);
    expect(unknownIntent.status).toBe(404);
    expect(unknownIntent.body.error?.code).toBe('not_found');

    const badId = await post('/wallet/api/intents/not-an-id!/pay');
    expect(badId.status).toBe(400);
    expect(badId.body.error?.code).toBe('invalid_request');

    const badAction = await post(`/wallet/api/intents/${randomAddress()}/refund`);
    expect(badAction.status).toBe(404);
    expect(badAction.body.error?.message).toMatch(/unknown wallet action "refund"/);
  });

  it('streams intent events', async () => {
    const controller = new AbortController();
    const response = await fetch(`${sandbox.url}/wallet/api/events`, { signal: controller.signal });
    expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);

    const reader = response.body!.getReader();
    const intentId = await createIntent();

    let text = '';
    while (!text.includes(intentId)) {
      const { value, done } = await reader.read();
      if (done) {
        break;
      }
      text += new TextDecoder().decode(value);
    }
    controller.abort();

    expect(text).toMatch(/event: intent\ndata: \{"type":"created"/);
    expect(text).toContain(intentId);
  });
});

describe('elements page routes', () => {
  it('redirects to the folder URL', async () => {
    const response = await fetch(`${sandbox.url}/sdk/v1/elements/payment-request-button`, { redirect: 'manual' });
    expect(response.status).toBe(301);
    expect(response.headers.get('location')).toBe('/sdk/v1/elements/payment-request-button/');
  });

  it('serves each payment page', async () => {
    for (const page of [
      'payment-request-button',
      'payment-request-modal-desktop',
      'payment-request-modal-mobile',
      'payment-request-page-desktop',
      'payment-request-page-mobile',
    ]) {
      const response = await fetch(`${sandbox.url}/sdk/v1/elements/${page}/`);
      const html = await response.text();
      expect(response.status, page).toBe(200);
      expect(html, page).toContain('../../../sandbox-web/elements.js');
      expect(html, page).toContain(`<meta name="sandbox-url" content="${sandbox.url}">`);
    }
  });
});

describe('elements page RPC forwarding', () => {
  it('forwards unary calls', async () => {
    const intentId = await createIntent();
    const body = new proto.GetStatusRequest({ intentId: { value: bs58.decode(intentId) } }).toBinary();
    const request = new proto.Common.Request({ service: 'MicroPayment', method: 'getStatus', body });

    const response = await fetch(`${sandbox.url}/sdk/v1/api/`, { method: 'POST', body: Buffer.from(request.toBinary()) });
    const envelope = proto.Common.Response.fromBinary(new Uint8Array(await response.arrayBuffer()));

    expect(response.status).toBe(200);
    expect(envelope.result).toBe(proto.Common.Response_Result.OK);
    expect(proto.GetStatusResponse.fromBinary(envelope.body).exists).toBe(true);
  });

  it('rejects an oversized body', async () => {
    const response = await fetch(`${sandbox.url}/sdk/v1/api/`, { method: 'POST', body: Buffer.alloc(100 * 1024) });

    expect(response.status).toBe(413);
    expect(await response.text()).toMatch(/Invalid RPC body/);
  });
});

describe('pages without bundles', () => {
  let server: Server;
  let baseUrl: string;
  let emptyDir: string;

  beforeAll(async () => {
    emptyDir = mkdtempSync(join(tmpdir(), 'sandbox-no-bundles-'));
    const app = express();
    app.use(
      createSandboxPagesRouter(new FakeSandboxContext(), {
        baseUrl: () => baseUrl,
        bundleDir: emptyDir,
        logger: silentLogger,
      }),
    );
    server = createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(emptyDir, { recursive: true, force: true });
  });

  it('wallet page explains the build', async () => {
    for (const path of ['/wallet', '/sdk/v1/elements/payment-request-modal-desktop/', '/sandbox-web/wallet.js']) {
      const response = await fetch(`${baseUrl}${path}`);
      expect(response.status, path).toBe(503);
      expect(await response.text(), path).toContain('Run <code>npm run build</code>');
    }
  });
});
