// The plugin inside real Phaser 4 and Phaser 3 games in headless Chromium,
// against the fake kit on loopback. The canvas sheet opens, shows the scan
// code and the status, and blocks input to the scene below. It follows the
// server to the grant, rejects with `closed` when the player cancels, and
// reopens for the same purchase after a reload.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
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

interface SheetView {
  purchaseId: string;
  status: string;
  texts: string[];
  hasCode: boolean;
  panel?: { x: number; y: number; scale: number };
  backdrop?: { width: number; height: number };
}

interface PageState {
  ready: boolean;
  phaserVersion: string;
  pointerDownsBelow: number;
  keyDownsBelow: number;
  result?: { ok: boolean; code?: string; purchaseId?: string; state?: string };
}

function readState(page: Page): Promise<PageState> {
  return page.evaluate(() => (window as never as { codePayTest: { state: PageState } }).codePayTest.state);
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

/** Clicks the canvas at a point in game coordinates (the game is 800 × 600). */
async function clickGame(page: Page, x: number, y: number): Promise<void> {
  const box = await page.locator('canvas').boundingBox();
  if (!box) throw new Error('the game canvas is not on the page');
  await page.mouse.click(box.x + (x * box.width) / 800, box.y + (y * box.height) / 600);
}

const versions: { phaserPackage: PhaserPackage; major: string }[] = [
  { phaserPackage: 'phaser', major: '4' },
  { phaserPackage: 'phaser3', major: '3' },
];

describe.skipIf(!availability.run).each(versions)('plugin in Phaser $major', ({ phaserPackage, major }) => {
  let pageDir: string;
  let site: TestSite;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  async function openGame(token = 'token-alice'): Promise<void> {
    await page.goto(`${site.url}/?token=${token}`);
    await waitFor(() => readState(page).catch(() => ({ ready: false }) as PageState), (state) => state.ready, 'the game to boot');
  }

  beforeAll(async () => {
    pageDir = await buildTestPage(phaserPackage);
    site = await startTestSite(pageDir);
    browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    page.on('pageerror', (error) => pageErrors.push(error.message));
    // Nothing leaves the machine: every request to another host fails.
    await page.route(/^https?:\/\/(?!127\.0\.0\.1[:/])/, (route) => route.abort());
    await openGame();
  });

  afterAll(async () => {
    await browser?.close();
    await site?.close();
    if (pageDir) await removeDirectory(pageDir);
  });

  it('boots with the expected Phaser', async () => {
    const state = await readState(page);

    expect(state.phaserVersion.startsWith(`${major}.`)).toBe(true);
    expect(pageErrors).toEqual([]);
  });

  it('opens the sheet with the code and status', async () => {
    await page.evaluate(() => (window as never as { codePayTest: { purchase(id: string): void } }).codePayTest.purchase('sword'));

    const sheet = await waitFor(() => readSheet(page), (view) => view?.status === 'waiting', 'the sheet to show the code');

    await page.screenshot({ path: `test-results/plugin-canvas-sheet-phaser${major}.png` });
    expect(sheet!.hasCode).toBe(true);
    expect(sheet!.texts).toContain('Sword');
    expect(sheet!.texts).toContain('$0.25');
    expect(sheet!.texts).toContain('Scan with the Code app to pay');
    expect(sheet!.texts).toContain('Cancel');
    expect(site.kit.purchases.get(sheet!.purchaseId)?.itemId).toBe('sword');
  });

  it('blocks pointer and keyboard input below', async () => {
    const before = await readState(page);

    await clickGame(page, 30, 30);
    await clickGame(page, 400, 300);
    await page.keyboard.press('A');

    const after = await readState(page);
    expect(after.pointerDownsBelow).toBe(before.pointerDownsBelow);
    expect(after.keyDownsBelow).toBe(before.keyDownsBelow);
  });

  it('follows the Scale Manager size', async () => {
    const before = (await readSheet(page))!;
    expect(before.panel).toEqual({ x: 400, y: 300, scale: 1 });
    expect(before.backdrop).toEqual({ width: 800, height: 600 });

    await page.evaluate(() => (window as never as { codePayTest: { game: { scale: { resize(w: number, h: number): void } } } }).codePayTest.game.scale.resize(400, 300));
    const resized = await waitFor(() => readSheet(page), (view) => view?.backdrop?.width === 400, 'the sheet to follow the resize');
    await page.evaluate(() => (window as never as { codePayTest: { game: { scale: { resize(w: number, h: number): void } } } }).codePayTest.game.scale.resize(800, 600));
    await waitFor(() => readSheet(page), (view) => view?.backdrop?.width === 800, 'the sheet to follow the second resize');

    // The panel (360 × 540 units) fits 90% of the 300-pixel height at scale 0.5.
    expect(resized!.panel).toEqual({ x: 200, y: 150, scale: 0.5 });
    expect(resized!.backdrop).toEqual({ width: 400, height: 300 });
  });

  it('shows paid then granted and resolves', async () => {
    const sheet = (await readSheet(page))!;

    site.kit.setState(sheet.purchaseId, 'paid');
    const paid = await waitFor(() => readSheet(page), (view) => view?.status === 'paid', 'the paid status');
    expect(paid!.texts).toContain('Paid: delivering your item…');

    site.kit.setState(sheet.purchaseId, 'granted');
    const state = await waitFor(() => readState(page), (value) => value.result !== undefined, 'purchase() to settle');
    expect(state.result).toEqual({ ok: true, purchaseId: sheet.purchaseId, state: 'granted' });
    const owns = await page.evaluate(() =>
      (window as never as { codePayTest: { plugin(): { owns(id: string): boolean } } }).codePayTest.plugin().owns('sword'),
    );
    expect(owns).toBe(true);
  });

  it('closes after the grant and frees input', async () => {
    await waitFor(() => readSheet(page), (view) => view === null, 'the sheet to close');
    const before = await readState(page);

    await clickGame(page, 400, 300);

    const after = await waitFor(() => readState(page), (state) => state.pointerDownsBelow > before.pointerDownsBelow, 'the click to reach the scene');
    expect(after.pointerDownsBelow).toBe(before.pointerDownsBelow + 1);
  });

  it('rejects with closed on cancel', async () => {
    await page.evaluate(() => (window as never as { codePayTest: { purchase(id: string): void } }).codePayTest.purchase('gems'));
    const sheet = await waitFor(() => readSheet(page), (view) => view?.status === 'waiting', 'the gems sheet');

    // The panel is 360 × 540 at scale 1 in an 800 × 600 game; its button is 48 units above the bottom edge.
    await clickGame(page, 400, 300 + 270 - 48);

    const state = await waitFor(() => readState(page), (value) => value.result !== undefined, 'purchase() to reject');
    expect(state.result).toMatchObject({ ok: false, code: 'closed' });
    expect(await readSheet(page)).toBeNull();
    expect(site.kit.purchases.get(sheet!.purchaseId)?.state).toBe('pending');
  });

  it('emits granted for a payment after close', async () => {
    const gems = [...site.kit.purchases.values()].find((purchase) => purchase.itemId === 'gems')!;
    await page.evaluate(() => {
      const test = (window as never as { codePayTest: { plugin(): { on(event: string, listener: (p: { id: string }) => void): void }; state: Record<string, unknown> } }).codePayTest;
      test.plugin().on('purchase:granted', (purchase) => {
        test.state.lateGrant = purchase.id;
      });
    });

    site.kit.payAndGrant(gems.id);

    const state = await waitFor(() => readState(page) as Promise<PageState & { lateGrant?: string }>, (value) => value.lateGrant !== undefined, 'the late grant event');
    expect(state.lateGrant).toBe(gems.id);
  });

  it('reopens the same purchase after a reload', async () => {
    await page.evaluate(() => (window as never as { codePayTest: { purchase(id: string): void } }).codePayTest.purchase('crown'));
    const before = await waitFor(() => readSheet(page), (view) => view?.status === 'waiting', 'the crown sheet');
    const purchasesBefore = site.kit.purchases.size;

    await openGame();
    const after = await waitFor(() => readSheet(page), (view) => view?.status === 'waiting', 'the sheet to reopen');

    expect(after!.purchaseId).toBe(before!.purchaseId);
    expect(site.kit.purchases.size).toBe(purchasesBefore);
    const purchase = site.kit.purchases.get(after!.purchaseId)!;
    expect(purchase.itemId).toBe('crown');

    site.kit.payAndGrant(purchase.id);
    await waitFor(() => readSheet(page), (view) => view === null, 'the reopened sheet to close after the grant');
    expect(pageErrors).toEqual([]);
  });

  it('shows overridden labels', async () => {
    await page.goto(`${site.url}/?cancelLabel=Abbrechen`);
    await waitFor(() => readState(page).catch(() => ({ ready: false }) as PageState), (state) => state.ready, 'the game to boot');

    await page.evaluate(() => (window as never as { codePayTest: { purchase(id: string): void } }).codePayTest.purchase('gems'));
    const sheet = await waitFor(() => readSheet(page), (view) => view?.status === 'waiting', 'the gems sheet');

    expect(sheet!.texts).toContain('Abbrechen');
    expect(sheet!.texts).not.toContain('Cancel');
  });

  it('destroys the game with an open sheet', async () => {
    await waitFor(() => readSheet(page), (view) => view?.status === 'waiting', 'the gems sheet');

    await page.evaluate(() => (window as never as { codePayTest: { game: { destroy(removeCanvas: boolean): void } } }).codePayTest.game.destroy(true));

    const state = await waitFor(() => readState(page), (value) => value.result !== undefined, 'purchase() to reject');
    expect(state.result).toMatchObject({ ok: false, code: 'closed' });
    await new Promise((resolveWait) => setTimeout(resolveWait, 300));
    expect(pageErrors).toEqual([]);
  });
});
