// The `elements` flow in headless Chromium with the unmodified
// `@code-wallet/elements`. The route handler serves a stub iframe page for
// requests to Code's SDK host, so nothing leaves the machine. The stub
// sends events to the element over postMessage the way Code's iframe does
// (`{ id: channelId, type: 'event', payload: { event } }`).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Frame, type Page } from 'playwright-core';
import {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  browserAvailability,
  buildTestPage,
  removeDirectory,
  startTestSite,
  type PhaserPackage,
  type TestSite,
} from './plugin-browser-helpers.js';

const availability = browserAvailability();
if (!availability.run) console.warn(availability.reason);

// The iframe's URL is `…/payment-request-page-desktop/#/{channelId}/p={options}`.
const STUB_IFRAME = `<!doctype html><html><body style="margin:0;background:#fff">
<p id="state">stub</p>
<script>
  const channelId = location.hash.split('/')[1];
  window.sendToElement = (event) => parent.postMessage({ id: channelId, type: 'event', payload: { event } }, '*');
</script></body></html>`;

interface PageState {
  ready: boolean;
  result?: { ok: boolean; code?: string; purchaseId?: string; state?: string };
}

function readState(page: Page): Promise<PageState> {
  return page.evaluate(() => (window as never as { codePayTest: { state: PageState } }).codePayTest.state);
}

async function waitFor<T>(read: () => Promise<T>, accept: (value: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T = await read();
  while (!accept(last)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((resolveWait) => setTimeout(resolveWait, 50));
    last = await read();
  }
  return last;
}

async function elementFrame(page: Page): Promise<Frame> {
  return waitFor(
    async () => page.frames().find((frame) => frame.url().includes('request-page-desktop')),
    (frame) => frame !== undefined,
    'the element iframe',
  ) as Promise<Frame>;
}

const versions: { phaserPackage: PhaserPackage; major: string }[] = [
  { phaserPackage: 'phaser', major: '4' },
  { phaserPackage: 'phaser3', major: '3' },
];

describe.skipIf(!availability.run).each(versions)('elements flow in Phaser $major', ({ phaserPackage }) => {
  let pageDir: string;
  let site: TestSite;
  let browser: Browser;
  let page: Page;
  const sdkRequests: string[] = [];

  beforeAll(async () => {
    pageDir = await buildTestPage(phaserPackage);
    site = await startTestSite(pageDir);
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1000, height: 800 } });

    await page.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => {
      const url = route.request().url();
      if (url.startsWith('https://sdk.getcode.com/')) {
        sdkRequests.push(url);
        return route.fulfill({ status: 200, contentType: 'text/html', body: STUB_IFRAME });
      }
      return route.abort();
    });

    await page.goto(`${site.url}/?flow=elements`);
    await waitFor(() => readState(page).catch(() => ({ ready: false })), (state) => state.ready, 'the game to boot');
  });

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    if (pageDir) await removeDirectory(pageDir);
  });

  it('mounts the page element inside the game', async () => {
    await page.evaluate(() => (window as never as { codePayTest: { purchase(id: string): void } }).codePayTest.purchase('sword'));
    await elementFrame(page);

    const layout = await page.evaluate(() => {
      const iframe = document.querySelector('iframe')!;
      const canvas = document.querySelector('canvas')!.getBoundingClientRect();
      const box = iframe.getBoundingClientRect();
      return {
        insideGame: document.getElementById('game')!.contains(iframe),
        position: getComputedStyle(iframe).position,
        iframe: { x: box.x, y: box.y, width: box.width, height: box.height },
        canvas: { x: canvas.x, y: canvas.y, width: canvas.width, height: canvas.height },
      };
    });

    expect(layout.insideGame).toBe(true);
    expect(layout.position).toBe('fixed');
    expect(layout.iframe).toEqual(layout.canvas);
    expect(sdkRequests.some((url) => url.includes('/payment-request-page-desktop/'))).toBe(true);
  });

  it('stays visible in fullscreen', async () => {
    // A click gives the page the user activation that requestFullscreen needs.
    await page.mouse.click(10, 10);
    await page.evaluate(() => document.getElementById('game')!.requestFullscreen());
    await waitFor(() => page.evaluate(() => document.fullscreenElement?.id ?? null), (id) => id === 'game', 'fullscreen');

    const layout = await page.evaluate(() => {
      const iframe = document.querySelector('iframe')!;
      const box = iframe.getBoundingClientRect();
      const canvas = document.querySelector('canvas')!.getBoundingClientRect();
      const center = document.elementFromPoint(canvas.x + canvas.width / 2, canvas.y + canvas.height / 2);
      return {
        insideFullscreen: document.fullscreenElement!.contains(iframe),
        iframe: { x: box.x, y: box.y, width: box.width, height: box.height },
        canvas: { x: canvas.x, y: canvas.y, width: canvas.width, height: canvas.height },
        iframeOnTop: center === iframe,
      };
    });
    await page.evaluate(() => document.exitFullscreen());

    expect(layout.insideFullscreen).toBe(true);
    expect(layout.iframeOnTop).toBe(true);
    expect(layout.iframe).toEqual(layout.canvas);
  });

  it('revalidates on success without granting', async () => {
    const purchase = [...site.kit.purchases.values()].find((candidate) => candidate.itemId === 'sword')!;
    const revalidationsBefore = site.kit.count('revalidate');

    const frame = await elementFrame(page);
    await frame.evaluate(() => (window as never as { sendToElement(event: string): void }).sendToElement('intentSubmitted'));

    await waitFor(async () => site.kit.count('revalidate'), (count) => count > revalidationsBefore, 'a revalidate request');
    const revalidation = site.kit.requests.filter((request) => request.event === 'revalidate').at(-1)!;
    expect(revalidation.payload).toEqual({ purchaseId: purchase.id });
    expect((await readState(page)).result).toBeUndefined();
    expect(site.kit.purchases.get(purchase.id)?.state).toBe('pending');
  });

  it('resolves and unmounts after the grant', async () => {
    const purchase = [...site.kit.purchases.values()].find((candidate) => candidate.itemId === 'sword')!;

    site.kit.payAndGrant(purchase.id);

    const state = await waitFor(() => readState(page), (value) => value.result !== undefined, 'purchase() to settle');
    expect(state.result).toEqual({ ok: true, purchaseId: purchase.id, state: 'granted' });
    await waitFor(() => page.evaluate(() => document.querySelectorAll('iframe').length), (count) => count === 0, 'the element to unmount');
    expect(await page.evaluate(() => document.querySelectorAll('[data-code-pay-sheet]').length)).toBe(0);
  });

  it('rejects with closed when the wallet declines', async () => {
    await page.evaluate(() => (window as never as { codePayTest: { purchase(id: string): void } }).codePayTest.purchase('crown'));
    const frame = await elementFrame(page);

    await frame.evaluate(() => (window as never as { sendToElement(event: string): void }).sendToElement('clientRejectedPayment'));

    const state = await waitFor(() => readState(page), (value) => value.result !== undefined, 'purchase() to reject');
    expect(state.result).toMatchObject({ ok: false, code: 'closed' });
    expect(await page.evaluate(() => document.querySelectorAll('[data-code-pay-sheet]').length)).toBe(0);
  });
});
