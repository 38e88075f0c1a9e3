import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { paymentIntents } from '@code-wallet/client';
import { PaymentRequestIntent } from '@code-wallet/intents';
import type { SandboxHandle } from '../server/sandbox/index.js';
import { ensureSandboxBundles } from './sandbox-pages-bundles.js';
import { makeTempDir, randomAddress, startTestSandbox } from './sandbox-helpers.js';

const CHROMIUM_PATH = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM_PATH);

if (!hasChromium) {
  if (process.env.CI === 'true') {
    throw new Error(`Chromium is missing at ${CHROMIUM_PATH}; CI must run the browser tests of the sandbox pages.`);
  }
  console.warn(`Skipping the sandbox page tests: no Chromium at ${CHROMIUM_PATH}.`);
}

let sandbox: SandboxHandle;
let tempDir: { dir: string; remove: () => void };
let browser: Browser;
let parentServer: Server;
let parentUrl: string;
let keyCounter = 0;

beforeAll(async () => {
  if (!hasChromium) {
    return;
  }

  // Build the page bundles when the sources changed, as `npm run build` does.
  await ensureSandboxBundles();

  tempDir = makeTempDir();
  sandbox = await startTestSandbox({ dataFile: join(tempDir.dir, 'sandbox.db') });

  // A page on another loopback origin that embeds the elements pages, as a game's page would.
  parentServer = createServer((_request, response) => {
    response.setHeader('content-type', 'text/html');
    response.end('<!doctype html><meta charset="utf-8"><title>parent</title><body></body>');
  });
  await new Promise<void>((resolve) => parentServer.listen(0, '127.0.0.1', resolve));
  parentUrl = `http://127.0.0.1:${(parentServer.address() as AddressInfo).port}/`;

  browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await sandbox?.close();
  if (parentServer) {
    await new Promise<void>((resolve) => parentServer.close(() => resolve()));
  }
  tempDir?.remove();
});

/** Creates an intent at the sandbox with the official client and returns its id and client secret. */
async function createIntent(amount = 0.25): Promise<{ id: string; clientSecret: string; destination: string }> {
  keyCounter += 1;
  const destination = randomAddress();
  const created = await paymentIntents.create({
    endpoint: sandbox.endpoint,
    mode: 'payment',
    destination,
    amount,
    currency: 'usd',
    idempotencyKey: `pages-test-${process.pid}-${Date.now()}-${keyCounter}`,
  });
  return { ...created, destination };
}

async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(`${sandbox.url}${path}`);
  expect(response.status).toBe(200);
  return (await response.json()) as T;
}

/** Runs a browser test on a fresh page and saves a screenshot under test-results/ when it fails. */
async function withPage(name: string, run: (page: Page) => Promise<void>): Promise<void> {
  const page = await browser.newPage();
  const consoleLines: string[] = [];
  page.on('console', (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => consoleLines.push(`pageerror: ${error.message}`));

  try {
    await run(page);
  } catch (error) {
    mkdirSync('test-results', { recursive: true });
    await page.screenshot({ path: join('test-results', `sandbox-pages-${name}.png`), fullPage: true }).catch(() => {});
    throw new Error(`${(error as Error).message}\nbrowser console:\n${consoleLines.join('\n')}`, { cause: error });
  } finally {
    await page.close();
  }
}

function encodeOptions(options: object): string {
  return encodeURIComponent(Buffer.from(JSON.stringify(options)).toString('base64'));
}

/** Mounts an elements page in an iframe of the parent page and records the events it posts. */
async function mountElementsPage(page: Page, pageName: string, channelId: string, options: object): Promise<void> {
  await page.goto(parentUrl);
  const src = `${sandbox.url}/sdk/v1/elements/${pageName}/#/${channelId}/p=${encodeOptions(options)}`;

  await page.evaluate(async (iframeSrc) => {
    const events: Array<{ event: string; args: unknown }> = [];
    (window as unknown as { channelEvents: typeof events }).channelEvents = events;
    window.addEventListener('message', (message) => {
      const data = message.data as { type?: string; payload?: { event: string; args: unknown } };
      if (data?.type === 'event' && data.payload) {
        events.push({ event: data.payload.event, args: data.payload.args });
      }
    });

    const iframe = document.createElement('iframe');
    iframe.src = iframeSrc;
    iframe.name = 'elements';
    iframe.style.width = '800px';
    iframe.style.height = '600px';
    await new Promise((resolve) => {
      iframe.addEventListener('load', resolve, { once: true });
      document.body.append(iframe);
    });
  }, src);
}

/** Posts a parent event to the iframe in the elements channel format. */
async function postToIframe(page: Page, channelId: string, event: string, args?: unknown): Promise<void> {
  await page.evaluate(
    ([id, name, eventArgs]) => {
      const iframe = document.querySelector('iframe')!;
      iframe.contentWindow!.postMessage({ id, type: 'event', payload: { event: name, args: eventArgs } }, '*');
    },
    [channelId, event, args] as const,
  );
}

async function waitForEvent(page: Page, event: string): Promise<void> {
  await page.waitForFunction(
    (name) => (window as unknown as { channelEvents: Array<{ event: string }> }).channelEvents.some((e) => e.event === name),
    event,
    { timeout: 15_000 },
  );
}

async function channelEvents(page: Page): Promise<Array<{ event: string; args: unknown }>> {
  return page.evaluate(() => (window as unknown as { channelEvents: Array<{ event: string; args: unknown }> }).channelEvents);
}

describe.skipIf(!hasChromium)('sandbox wallet page', () => {
  it('pays a pending intent', async () => {
    const intent = await createIntent();

    await withPage('wallet-pay', async (page) => {
      await page.goto(`${sandbox.walletUrl}#scan=${intent.clientSecret}`);
      const row = page.locator(`tr[data-intent-id="${intent.id}"]`);

      await expect.poll(() => row.locator('td.status').textContent()).toBe('pending');
      await expect.poll(() => row.locator('svg.scan-code').getAttribute('data-intent-id')).toBe(intent.id);

      await row.locator('button[data-action="pay"]').click();
      await expect.poll(() => row.locator('td.status').textContent()).toBe('paid');
    });

    const stored = await getJson<{ status: string }>(`/control/intents/${intent.id}`);
    expect(stored.status).toBe('paid');

    const ledger = await getJson<{ entries?: Array<{ intentId: string }> } | Array<{ intentId: string }>>('/control/ledger');
    const entries = Array.isArray(ledger) ? ledger : (ledger.entries ?? []);
    expect(entries.filter((entry) => entry.intentId === intent.id)).toHaveLength(1);
  });

  it('shows a new intent live', async () => {
    await withPage('wallet-live', async (page) => {
      await page.goto(sandbox.walletUrl);
      await expect.poll(() => page.locator('#status').textContent()).toBe('Live.');

      const intent = await createIntent(0.5);
      const row = page.locator(`tr[data-intent-id="${intent.id}"]`);
      await expect.poll(() => row.locator('td.amount').textContent()).toBe('0.50 USD');

      await row.locator('button[data-action="reject"]').click();
      await expect.poll(() => row.locator('td.status').textContent()).toBe('rejected');
    });
  });
});

describe.skipIf(!hasChromium)('sandbox elements pages', () => {
  it('modal reports intentSubmitted', async () => {
    const intent = await createIntent();
    const channelId = 'channel-modal';

    await withPage('elements-modal', async (page) => {
      await mountElementsPage(page, 'payment-request-modal-desktop', channelId, {
        mode: 'payment',
        locale: 'en',
        amount: 0.25,
        currency: 'usd',
        destination: intent.destination,
      });

      await postToIframe(page, channelId, 'updatedClientSecret', { value: intent.clientSecret });
      await postToIframe(page, channelId, 'beforeInvoke');
      await postToIframe(page, channelId, 'afterInvoke');

      const frame = page.frameLocator('iframe[name="elements"]');
      await expect.poll(() => frame.locator('svg.scan-code').getAttribute('data-intent-id')).toBe(intent.id);
      await expect.poll(() => frame.locator('#pay').isEnabled()).toBe(true);

      await frame.locator('#pay').click();
      await waitForEvent(page, 'intentSubmitted');

      const names = (await channelEvents(page)).map((entry) => entry.event);
      expect(names).toContain('codeScanned');
      expect(names.indexOf('codeScanned')).toBeLessThan(names.indexOf('intentSubmitted'));
      expect(names).not.toContain('error');
    });

    const stored = await getJson<{ status: string }>(`/control/intents/${intent.id}`);
    expect(stored.status).toBe('paid');
  });

  it('modal creates a missing intent', async () => {
    const destination = randomAddress();
    const idempotencyKey = `pages-test-browser-only-${process.pid}-${Date.now()}`;
    const intentId = new PaymentRequestIntent({ destination, amount: 0.25, currency: 'usd', idempotencyKey }).getIntentId();
    const channelId = 'channel-create';

    await withPage('elements-create', async (page) => {
      await mountElementsPage(page, 'payment-request-modal-mobile', channelId, {
        mode: 'payment',
        amount: 0.25,
        currency: 'usd',
        destination,
        idempotencyKey,
      });

      await postToIframe(page, channelId, 'beforeInvoke');
      await postToIframe(page, channelId, 'afterInvoke');

      const frame = page.frameLocator('iframe[name="elements"]');
      await expect.poll(() => frame.locator('#pay').isEnabled()).toBe(true);
      await frame.locator('#pay').click();
      await waitForEvent(page, 'intentSubmitted');
    });

    const stored = await getJson<{ status: string; destination: string }>(`/control/intents/${intentId}`);
    expect(stored.status).toBe('paid');
    expect(stored.destination).toBe(destination);
  });

  it('page reports a decline', async () => {
    const intent = await createIntent();
    const channelId = 'channel-page';

    await withPage('elements-page-decline', async (page) => {
      await mountElementsPage(page, 'payment-request-page-mobile', channelId, {
        mode: 'payment',
        amount: 0.25,
        currency: 'usd',
        destination: intent.destination,
        clientSecret: intent.clientSecret,
      });

      await postToIframe(page, channelId, 'beforeInvoke');
      await postToIframe(page, channelId, 'afterInvoke');

      const frame = page.frameLocator('iframe[name="elements"]');
      await expect.poll(() => frame.locator('#decline').isEnabled()).toBe(true);
      await frame.locator('#decline').click();

      await waitForEvent(page, 'clientRejectedPayment');
    });

    const stored = await getJson<{ status: string }>(`/control/intents/${intent.id}`);
    expect(stored.status).toBe('rejected');
  });

  it('button posts resize and invoke', async () => {
    const channelId = 'channel-button';

    await withPage('elements-button', async (page) => {
      await mountElementsPage(page, 'payment-request-button', channelId, {
        mode: 'payment',
        amount: 0.25,
        currency: 'usd',
        destination: randomAddress(),
      });

      await waitForEvent(page, 'resize');
      await page.frameLocator('iframe[name="elements"]').locator('#invoke').click();
      await waitForEvent(page, 'invoke');

      const resize = (await channelEvents(page)).find((entry) => entry.event === 'resize');
      expect(resize?.args).toEqual({ width: expect.any(Number), height: expect.any(Number) });
    });
  });

  it('preload page posts nothing', async () => {
    await withPage('elements-preload', async (page) => {
      await mountElementsPage(page, 'payment-request-modal-desktop', 'preload', {
        mode: 'payment',
        amount: 0.25,
        currency: 'usd',
        destination: randomAddress(),
      });

      const frame = page.frameLocator('iframe[name="elements"]');
      await expect.poll(() => frame.locator('#status').textContent()).toBe('Preloaded.');
      expect(await channelEvents(page)).toEqual([]);
    });
  });

  it('unknown page returns 404', async () => {
    const response = await fetch(`${sandbox.url}/sdk/v1/elements/tip-request-button/`);
    expect(response.status).toBe(404);
    expect(await response.text()).toMatch(/no elements page "tip-request-button"/);
  });
});
