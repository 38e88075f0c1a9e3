// The canvas sheet following an intent on the sequencer's message stream,
// in Phaser 4 in headless Chromium. The fake kit publishes the stream URL in
// its catalog acknowledgement, and the sheet opens a signed stream for the
// rendezvous key. Stream messages change the status or trigger a
// re-validation, never a grant.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  browserAvailability,
  buildTestPage,
  removeDirectory,
  startTestSite,
  type TestSite,
} from './plugin-browser-helpers.js';
import { FakeMessageStream } from './plugin-fake-stream.js';

const availability = browserAvailability();
if (!availability.run) console.warn(availability.reason);

interface SheetView {
  purchaseId: string;
  status: string;
  texts: string[];
}

function readSheet(page: Page): Promise<SheetView | null> {
  return page.evaluate(() => (window as never as { codePayTest: { sheet(): SheetView | null } }).codePayTest.sheet());
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

describe.skipIf(!availability.run)('canvas sheet on the message stream', () => {
  let pageDir: string;
  let stream: FakeMessageStream;
  let site: TestSite;
  let browser: Browser;
  let page: Page;

  async function startPurchase(itemId: string): Promise<{ purchaseId: string; intentId: string }> {
    await page.evaluate((id) => (window as never as { codePayTest: { purchase(id: string): void } }).codePayTest.purchase(id), itemId);
    const sheet = await waitFor(() => readSheet(page), (view) => view?.status === 'waiting', `the ${itemId} sheet`);
    const purchase = site.kit.purchases.get(sheet!.purchaseId)!;
    await waitFor(async () => stream.streams.has(purchase.intentId), (open) => open, 'the stream to open');
    return { purchaseId: purchase.id, intentId: purchase.intentId };
  }

  beforeAll(async () => {
    pageDir = await buildTestPage('phaser');
    stream = new FakeMessageStream();
    const streamUrl = await stream.listen();
    site = await startTestSite(pageDir, { catalogExtra: { streamUrl } });
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    await page.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort());
    await page.goto(site.url);
    await waitFor(
      () => page.evaluate(() => (window as never as { codePayTest?: { state: { ready: boolean } } }).codePayTest?.state.ready ?? false),
      (ready) => ready,
      'the game to boot',
    );
  });

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await stream?.close();
    if (pageDir) await removeDirectory(pageDir);
  });

  it('opens a signed stream for the intent', async () => {
    const { intentId } = await startPurchase('sword');

    expect(stream.streams.has(intentId)).toBe(true);
    expect(stream.rejected).toEqual([]);
  });

  it('shows scanned from the stream', async () => {
    const sheet = (await readSheet(page))!;
    const { intentId } = site.kit.purchases.get(sheet.purchaseId)!;

    expect(stream.send(intentId, 'codeScanned')).toBe(true);

    const view = await waitFor(() => readSheet(page), (value) => value?.status === 'scanned', 'the scanned status');
    expect(view!.texts).toContain('Scanned: confirm in the Code app');
  });

  it('reopens a stream that ended', async () => {
    const sheet = (await readSheet(page))!;
    const { intentId } = site.kit.purchases.get(sheet.purchaseId)!;
    const opensBefore = stream.opens.get(intentId) ?? 0;

    stream.drop(intentId);

    await waitFor(async () => stream.opens.get(intentId) ?? 0, (opens) => opens > opensBefore, 'the stream to reopen');
    expect(stream.streams.has(intentId)).toBe(true);
    expect(stream.rejected).toEqual([]);
  });

  it('revalidates on intentSubmitted without granting', async () => {
    const sheet = (await readSheet(page))!;
    const purchase = site.kit.purchases.get(sheet.purchaseId)!;
    const before = site.kit.count('revalidate');

    stream.send(purchase.intentId, 'intentSubmitted');

    await waitFor(async () => site.kit.count('revalidate'), (count) => count > before, 'a revalidate request');
    expect(site.kit.requests.filter((request) => request.event === 'revalidate').at(-1)!.payload).toEqual({ purchaseId: purchase.id });
    expect((await readSheet(page))!.status).toBe('scanned');
  });

  it('shows declined and reports it', async () => {
    const sheet = (await readSheet(page))!;
    const purchase = site.kit.purchases.get(sheet.purchaseId)!;

    stream.send(purchase.intentId, 'clientRejectedPayment');

    const view = await waitFor(() => readSheet(page), (value) => value?.status === 'declined', 'the declined status');
    expect(view!.texts).toContain('Payment declined in the wallet');
    await waitFor(async () => site.kit.purchases.get(purchase.id)!.state, (state) => state === 'cancelled', 'the kit to record the decline');
    expect(site.kit.requests.filter((request) => request.event === 'revalidate').at(-1)!.payload).toEqual({ purchaseId: purchase.id, hint: 'cancelled' });
  });
});
