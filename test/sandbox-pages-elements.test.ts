// Drives the unmodified @code-wallet/elements package against the sandbox's
// elements pages in Chromium. The browser maps https://sdk.getcode.com/* onto
// the sandbox's /sdk/* and https://cash.getcode.com/v1/* onto its /v1/*, and
// aborts every other request that leaves loopback. Playwright's
// routeWebSocket does not reach the cross-origin iframe, so the pages find no
// message stream there and follow the intent through the wallet API.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
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
  console.warn(`Skipping the elements package tests: no Chromium at ${CHROMIUM_PATH}.`);
}

const require = createRequire(import.meta.url);

let sandbox: SandboxHandle;
let tempDir: { dir: string; remove: () => void };
let browser: Browser;
let gameServer: Server;
let gameUrl: string;

beforeAll(async () => {
  if (!hasChromium) {
    return;
  }

  // Build the page bundles when the sources changed, as `npm run build` does.
  await ensureSandboxBundles();

  tempDir = makeTempDir();
  sandbox = await startTestSandbox({ dataFile: join(tempDir.dir, 'sandbox.db') });

  // The game's page: Vue and the elements IIFE build, served from loopback.
  const vueScript = readFileSync(require.resolve('vue/dist/vue.global.prod.js'));
  const elementsScript = readFileSync(
    join(require.resolve('@code-wallet/elements/package.json'), '..', 'dist', 'elements.iife.js'),
  );
  gameServer = createServer((request, response) => {
    if (request.url === '/vue.js' || request.url === '/elements.js') {
      response.setHeader('content-type', 'text/javascript');
      response.end(request.url === '/vue.js' ? vueScript : elementsScript);
      return;
    }
    response.setHeader('content-type', 'text/html');
    response.end(
      '<!doctype html><meta charset="utf-8"><title>game</title>' +
        '<script src="/vue.js"></script><script src="/elements.js"></script><div id="checkout"></div>',
    );
  });
  await new Promise<void>((resolve) => gameServer.listen(0, '127.0.0.1', resolve));
  gameUrl = `http://127.0.0.1:${(gameServer.address() as AddressInfo).port}/`;

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
  if (gameServer) {
    await new Promise<void>((resolve) => gameServer.close(() => resolve()));
  }
  tempDir?.remove();
});

/** Opens a browser context whose requests to Code's hosts reach the sandbox and nothing else leaves loopback. */
async function newMappedContext(): Promise<BrowserContext> {
  const context = await browser.newContext();

  // Playwright tries the most recently registered route first, so the catch-all goes first.
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1' || url.hostname === 'localhost') {
      return route.continue();
    }
    return route.abort('blockedbyclient');
  });
  await context.route('https://sdk.getcode.com/**', async (route) => {
    const url = new URL(route.request().url());
    const response = await route.fetch({ url: `${sandbox.url}/sdk${url.pathname}${url.search}` });
    await route.fulfill({ response });
  });
  await context.route('https://cash.getcode.com/v1/**', async (route) => {
    const url = new URL(route.request().url());
    const response = await route.fetch({ url: `${sandbox.url}${url.pathname}${url.search}` });
    await route.fulfill({ response });
  });
  return context;
}

async function withPage(name: string, run: (page: Page) => Promise<void>): Promise<void> {
  const context = await newMappedContext();
  const page = await context.newPage();
  const consoleLines: string[] = [];
  page.on('console', (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => consoleLines.push(`pageerror: ${error.message}`));

  try {
    await run(page);
  } catch (error) {
    mkdirSync('test-results', { recursive: true });
    await page.screenshot({ path: join('test-results', `sandbox-elements-${name}.png`) }).catch(() => {});
    throw new Error(`${(error as Error).message}\nbrowser console:\n${consoleLines.join('\n')}`, { cause: error });
  } finally {
    await context.close();
  }
}

async function createIntent(): Promise<{ id: string; clientSecret: string; destination: string }> {
  const destination = randomAddress();
  const created = await paymentIntents.create({
    endpoint: sandbox.endpoint,
    mode: 'payment',
    destination,
    amount: 0.25,
    currency: 'usd',
    idempotencyKey: `elements-test-${process.pid}-${Date.now()}-${Math.random()}`,
  });
  return { ...created, destination };
}

/** Creates and mounts an element of the given type on the game page and records what it emits in `window.results`. */
async function mountElement(page: Page, type: 'page' | 'button', options: Record<string, unknown>): Promise<void> {
  await page.goto(gameUrl);
  await page.evaluate(
    ({ elementType, elementOptions }) => {
      const results: Array<{ event: string; intent?: string }> = [];
      (window as unknown as { results: typeof results }).results = results;

      type Element = { on: (event: string, callback: (args: never) => unknown) => void; mount: (selector: string) => void };
      const sdk = (window as unknown as { code: { elements: { create: (kind: string, options: object) => Record<string, Element> } } })
        .code;
      const element = sdk.elements.create(elementType, elementOptions)[elementType]!;

      element.on('success', (args: { intent: string }) => {
        results.push({ event: 'success', intent: args.intent });
        return true;
      });
      element.on('cancel', () => {
        results.push({ event: 'cancel' });
        return true;
      });
      element.on('error', (args: { message: string }) => {
        results.push({ event: `error: ${args.message}` });
      });
      element.mount('#checkout');
    },
    { elementType: type, elementOptions: { currency: 'usd', amount: 0.25, ...options } },
  );
}

async function results(page: Page): Promise<unknown[]> {
  return page.evaluate(() => (window as unknown as { results: unknown[] }).results);
}

async function payInCard(page: Page, intentId: string): Promise<void> {
  const frame = page.frameLocator('iframe[name="payment-request-card"]');
  await expect.poll(() => frame.locator('svg.scan-code').getAttribute('data-intent-id'), { timeout: 15_000 }).toBe(intentId);
  await expect.poll(() => frame.locator('#pay').isEnabled()).toBe(true);
  await frame.locator('#pay').click();
}

async function intentStatus(intentId: string): Promise<string> {
  const response = await fetch(`${sandbox.url}/control/intents/${intentId}`);
  return ((await response.json()) as { status: string }).status;
}

describe.skipIf(!hasChromium)('elements package against the sandbox', () => {
  it('page element emits success', async () => {
    const intent = await createIntent();

    await withPage('page-success', async (page) => {
      await mountElement(page, 'page', { clientSecret: intent.clientSecret, destination: intent.destination });
      await payInCard(page, intent.id);

      await expect.poll(() => results(page), { timeout: 15_000 }).toEqual([{ event: 'success', intent: intent.id }]);
    });

    expect(await intentStatus(intent.id)).toBe('paid');
  });

  it('button element emits success', async () => {
    const intent = await createIntent();

    await withPage('button-success', async (page) => {
      await mountElement(page, 'button', { clientSecret: intent.clientSecret, destination: intent.destination });
      await page.frameLocator('iframe[name="payment-request-button"]').locator('#invoke').click();
      await payInCard(page, intent.id);

      await expect.poll(() => results(page), { timeout: 15_000 }).toEqual([{ event: 'success', intent: intent.id }]);
    });

    expect(await intentStatus(intent.id)).toBe('paid');
  });

  it('page element creates its intent', async () => {
    const destination = randomAddress();
    const idempotencyKey = `elements-test-browser-only-${process.pid}-${Date.now()}`;
    const intentId = new PaymentRequestIntent({ destination, amount: 0.25, currency: 'usd', idempotencyKey }).getIntentId();

    await withPage('page-create', async (page) => {
      await mountElement(page, 'page', { idempotencyKey, destination });
      await payInCard(page, intentId);

      await expect.poll(() => results(page), { timeout: 15_000 }).toEqual([{ event: 'success', intent: intentId }]);
    });

    expect(await intentStatus(intentId)).toBe('paid');
  });

  it('declining emits cancel', async () => {
    const intent = await createIntent();

    await withPage('page-cancel', async (page) => {
      await mountElement(page, 'page', { clientSecret: intent.clientSecret, destination: intent.destination });
      const frame = page.frameLocator('iframe[name="payment-request-card"]');
      await expect.poll(() => frame.locator('#decline').isEnabled(), { timeout: 15_000 }).toBe(true);
      await frame.locator('#decline').click();

      await expect.poll(() => results(page), { timeout: 15_000 }).toEqual([{ event: 'cancel' }]);
    });

    expect(await intentStatus(intent.id)).toBe('rejected');
  });
});
