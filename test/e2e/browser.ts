// Chromium for the browser tests of the sample game. Contexts reach loopback
// only, plus Code's hosts mapped onto the sandbox for the elements flow.
// `GamePage` is a player's view of the game page, `payInWallet` drives the
// sandbox wallet page, and `withContexts` saves screenshots of failed tests.

import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';

import { REPOSITORY_ROOT } from './game-server.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

const FAILURE_DIR = path.join(REPOSITORY_ROOT, 'test-results');
export const IMAGES_DIR = path.join(REPOSITORY_ROOT, 'docs', 'images');

/** Whether `UPDATE_SCREENSHOTS=1` is set, which makes the tests rewrite the README's images. */
export const UPDATE_SCREENSHOTS = process.env.UPDATE_SCREENSHOTS === '1';

/**
 * Returns whether the browser tests run. Without Chromium they skip with a message,
 * except when `CI=true`, where a missing browser is an error.
 */
export function hasChromium(suite: string): boolean {
  if (existsSync(CHROMIUM_PATH)) {
    return true;
  }
  if (process.env.CI === 'true') {
    throw new Error(`${CHROMIUM_PATH} is missing and CI=true: install Debian's chromium package to run the ${suite} browser tests.`);
  }
  console.warn(`Skipping the ${suite} browser tests: ${CHROMIUM_PATH} not found (install chromium to run them).`);
  return false;
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}

/**
 * Opens a browser context whose requests stay on loopback. With
 * `codeHostsTo`, that sandbox's /sdk/* pages serve https://sdk.getcode.com/*
 * and its RPC endpoint serves https://cash.getcode.com/v1/*, as the
 * unmodified elements package needs. Every other host is aborted.
 */
export async function newLoopbackContext(browser: Browser, options: { codeHostsTo?: string } = {}): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
  await context.addInitScript(defineReaders);

  // Playwright tries the most recently added route first, so the catch-all goes first.
  await context.route('**/*', (route) => {
    const { hostname } = new URL(route.request().url());
    if (hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]') {
      return route.continue();
    }
    return route.abort('blockedbyclient');
  });

  const sandboxUrl = options.codeHostsTo;
  if (sandboxUrl !== undefined) {
    await context.route('https://sdk.getcode.com/**', async (route) => {
      const url = new URL(route.request().url());
      await route.fulfill({ response: await route.fetch({ url: `${sandboxUrl}/sdk${url.pathname}${url.search}` }) });
    });
    await context.route('https://cash.getcode.com/v1/**', async (route) => {
      const url = new URL(route.request().url());
      await route.fulfill({ response: await route.fetch({ url: `${sandboxUrl}${url.pathname}${url.search}` }) });
    });
  }
  return context;
}

/** Opens loopback contexts for a test body; see `withContexts`. */
export type OpenContext = (options?: { codeHostsTo?: string }) => Promise<BrowserContext>;

/**
 * Runs `body` with a function that opens loopback contexts, and closes them
 * all afterwards. When `body` throws, every open page is saved as a
 * screenshot under test-results/ first, and the browser console goes to
 * stderr.
 */
export async function withContexts(browser: Browser, name: string, body: (open: OpenContext) => Promise<void>): Promise<void> {
  const contexts: BrowserContext[] = [];
  const consoleLines: string[] = [];

  const open: OpenContext = async (options) => {
    const context = await newLoopbackContext(browser, options);
    context.on('console', (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
    context.on('weberror', (error) => consoleLines.push(`page error: ${error.error().message}`));
    // Requests to hosts off loopback fail here too, as ERR_BLOCKED_BY_CLIENT.
    context.on('requestfailed', (request) => consoleLines.push(`request failed: ${request.url()} (${request.failure()?.errorText ?? 'unknown error'})`));
    contexts.push(context);
    return context;
  };

  try {
    await body(open);
  } catch (error) {
    await saveScreenshots(name, contexts);
    console.error(`Browser console of the failed test ${name}:\n${consoleLines.slice(-80).join('\n')}`);
    throw error;
  } finally {
    for (const context of contexts) {
      await context.close().catch(() => undefined);
    }
  }
}

async function saveScreenshots(name: string, contexts: BrowserContext[]): Promise<void> {
  mkdirSync(FAILURE_DIR, { recursive: true });
  let index = 0;
  for (const context of contexts) {
    for (const page of context.pages()) {
      index += 1;
      const file = path.join(FAILURE_DIR, `e2e-${name}-${index}.png`);
      try {
        await page.screenshot({ path: file });
        console.error(`Screenshot of the failed test: ${file}`);
      } catch (error) {
        console.error(`Could not save a screenshot of ${page.url()}: ${(error as Error).message}`);
      }
    }
  }
}

/** Size of the game in its own units (the sample game's config). */
const GAME_WIDTH = 800;
const GAME_HEIGHT = 600;

/** Centre of the buy button of the shop's row `index`, in game units (ShopScene's layout). */
function buyButtonPosition(index: number): { x: number; y: number } {
  return { x: 80 + 640 - 90, y: 60 + 80 + index * 112 + 34 };
}

/** Shop rows in the order of the sample catalog. */
export const SHOP_ROWS = { 'golden-ship': 0, 'extra-lives': 1, 'star-crown': 2 } as const;

export type ShopItem = keyof typeof SHOP_ROWS;

export interface SheetState {
  purchaseId: string;
  status: string;
  intentId: string | undefined;
  clientSecret: string | undefined;
}

/** One entry of the log the init script keeps: a sheet status change or a plugin event. */
export interface PageLogEntry {
  kind: 'sheet' | 'event';
  name: string;
  purchaseId: string;
}

/**
 * Installed before the game's scripts on every load: records each change of
 * the payment sheet's status and each purchase event of the plugin in
 * `window.__e2eLog`. The sheet is also read right after each event, because
 * the plugin updates it in its own earlier listener of the same event, so a
 * status shown for less than a polling interval is still recorded.
 */
function recordSheetAndEvents(): void {
  type Plugin = { sheet?: { purchaseId: string; status: string }; on(event: string, listener: (purchase: { id: string }) => void): void };
  const log: Array<{ kind: string; name: string; purchaseId: string }> = [];
  (window as unknown as { __e2eLog: typeof log }).__e2eLog = log;

  let lastSheet = '';
  const recordSheet = (plugin: Plugin): void => {
    const sheet = plugin.sheet;
    const current = sheet === undefined ? '' : `${sheet.purchaseId}:${sheet.status}`;
    if (current !== lastSheet) {
      lastSheet = current;
      log.push({ kind: 'sheet', name: sheet === undefined ? 'closed' : sheet.status, purchaseId: sheet?.purchaseId ?? '' });
    }
  };

  let subscribed = false;
  const timer = setInterval(() => {
    const game = (window as unknown as { sampleGame?: { game: { plugins: { get(key: string): unknown } } } }).sampleGame?.game;
    const plugin = game?.plugins.get('CodePay') as Plugin | undefined | null;
    if (plugin === undefined || plugin === null) return;

    if (!subscribed) {
      subscribed = true;
      for (const event of ['purchase:pending', 'purchase:paid', 'purchase:granted', 'purchase:cancelled', 'purchase:failed']) {
        plugin.on(event, (purchase) => {
          log.push({ kind: 'event', name: event, purchaseId: purchase.id });
          recordSheet(plugin);
        });
      }
    }
    recordSheet(plugin);
  }, 5);
  window.addEventListener('pagehide', () => clearInterval(timer));
}

/** The sample game in one browser page, driven the way a player does, with reads through `window.sampleGame`. */
export class GamePage {
  private constructor(
    readonly page: Page,
    readonly gameUrl: string,
  ) {}

  /** Opens the game at `gameUrl` (plus `query`) and waits until it is playable and connected. */
  static async open(context: BrowserContext, gameUrl: string, query = ''): Promise<GamePage> {
    const page = await context.newPage();
    await page.addInitScript(recordSheetAndEvents);
    const game = new GamePage(page, gameUrl);
    await page.goto(`${gameUrl}/${query}`);
    await game.waitUntilReady();
    return game;
  }

  async reload(): Promise<void> {
    await this.page.reload();
    await this.waitUntilReady();
  }

  async waitUntilReady(): Promise<void> {
    await expect
      .poll(
        () =>
          this.page.evaluate(() => {
            const sample = (window as unknown as { sampleGame?: { game: { scene: { isActive(key: string): boolean }; plugins: { get(key: string): unknown } } } })
              .sampleGame;
            const plugin = sample?.game.plugins.get('CodePay') as { connected: boolean } | undefined;
            return sample !== undefined && sample.game.scene.isActive('play') && plugin?.connected === true;
          }),
        { timeout: 20_000, message: 'the game did not boot and connect to the kit' },
      )
      .toBe(true);
  }

  /** Clicks the canvas at a point given in game units. */
  async clickGame(x: number, y: number): Promise<void> {
    const box = await this.page.locator('canvas').boundingBox();
    if (box === null) {
      throw new Error('The game canvas is not visible.');
    }
    await this.page.mouse.click(box.x + (x * box.width) / GAME_WIDTH, box.y + (y * box.height) / GAME_HEIGHT);
  }

  /** Opens the shop with the B key and waits until it lists the catalog. */
  async openShop(): Promise<void> {
    await this.page.locator('canvas').focus().catch(() => undefined);
    await this.page.keyboard.press('b');
    await expect
      .poll(() => this.page.evaluate(() => readShop()?.rows ?? -1), { timeout: 15_000, message: 'the shop did not list the catalog' })
      .toBe(3);
  }

  /** Closes the shop with the Escape key and waits until the play scene runs again. */
  async closeShop(): Promise<void> {
    await this.page.keyboard.press('Escape');
    await expect.poll(() => this.page.evaluate(() => readShop() === undefined), { message: 'the shop did not close' }).toBe(true);
  }

  /** Clicks the buy button of `item` in the open shop. */
  async clickBuy(item: ShopItem): Promise<void> {
    const { x, y } = buyButtonPosition(SHOP_ROWS[item]);
    await this.clickGame(x, y);
  }

  /** Returns the label of the buy button of `item` and the shop's message line. */
  async shopTexts(item: ShopItem): Promise<{ button: string; message: string }> {
    return this.page.evaluate((row) => {
      const shop = readShop();
      return { button: shop?.labels[row] ?? '', message: shop?.message ?? '' };
    }, SHOP_ROWS[item]);
  }

  /** Returns the open payment sheet with its purchase's intent id and client secret, or undefined. */
  async sheet(): Promise<SheetState | undefined> {
    return this.page.evaluate(() => {
      const plugin = readPlugin();
      const sheet = plugin.sheet;
      if (sheet === undefined) return undefined;
      const purchase = plugin.client.getPurchase(sheet.purchaseId);
      return { purchaseId: sheet.purchaseId, status: sheet.status, intentId: purchase?.intentId, clientSecret: purchase?.clientSecret };
    });
  }

  /** Waits until a payment sheet shows a scan code (status `waiting`) and returns it. */
  async waitForWaitingSheet(): Promise<SheetState & { intentId: string; clientSecret: string }> {
    await expect.poll(async () => (await this.sheet())?.status, { timeout: 20_000, message: 'no payment sheet showed a scan code' }).toBe('waiting');
    const sheet = (await this.sheet())!;
    expect(sheet.intentId).toBeTypeOf('string');
    expect(sheet.clientSecret).toBeTypeOf('string');
    return sheet as SheetState & { intentId: string; clientSecret: string };
  }

  /** Everything the init script recorded since the page loaded. */
  async log(): Promise<PageLogEntry[]> {
    return this.page.evaluate(() => (window as unknown as { __e2eLog: PageLogEntry[] }).__e2eLog);
  }

  /** Sheet statuses recorded for `purchaseId`, in order. */
  async sheetStatuses(purchaseId: string): Promise<string[]> {
    return (await this.log()).filter((entry) => entry.kind === 'sheet' && entry.purchaseId === purchaseId).map((entry) => entry.name);
  }

  /** Plugin events recorded for `purchaseId`, in order. */
  async events(purchaseId: string): Promise<string[]> {
    return (await this.log()).filter((entry) => entry.kind === 'event' && entry.purchaseId === purchaseId).map((entry) => entry.name);
  }

  async playerId(): Promise<string> {
    return this.page.evaluate(() => (window as unknown as { sampleGame: { session: { playerId: string } } }).sampleGame.session.playerId);
  }

  /** Returns the quantity of `item` in the inventory the game shows. */
  async quantity(item: ShopItem): Promise<number> {
    return this.page.evaluate(
      (itemId) => (window as unknown as { sampleGame: { session: { quantity(id: string): number } } }).sampleGame.session.quantity(itemId),
      item,
    );
  }

  /** Returns the texture key of the player's ship in the play scene. */
  async shipTexture(): Promise<string> {
    return this.page.evaluate(() => {
      const game = (window as unknown as { sampleGame: { game: { scene: { getScene(key: string): unknown } } } }).sampleGame.game;
      const play = game.scene.getScene('play') as unknown as { ship: { texture: { key: string } } };
      return play.ship.texture.key;
    });
  }

  /** Calls the plugin's `purchase(itemId)` and resolves with the error code it rejects with, or `granted`. */
  async purchaseThroughPlugin(item: ShopItem): Promise<string> {
    return this.page.evaluate(async (itemId) => {
      try {
        const purchase = await readPlugin().purchase(itemId);
        return purchase.state;
      } catch (error) {
        return (error as { code?: string }).code ?? String(error);
      }
    }, item);
  }

  /** Waits until the sheet of `purchaseId` has closed after showing the granted status. */
  async waitForGrantedSheet(purchaseId: string): Promise<void> {
    await expect
      .poll(() => this.sheetStatuses(purchaseId), { timeout: 30_000, message: `the sheet of ${purchaseId} did not show the grant and close` })
      .toEqual(expect.arrayContaining(['granted']));
    await expect.poll(async () => (await this.sheet())?.purchaseId, { timeout: 10_000 }).not.toBe(purchaseId);
  }
}

// `readPlugin` and `readShop` exist only in the page: `defineReaders` adds
// them to `window` in every page of a loopback context. The declarations
// below type the calls inside `page.evaluate`.
declare function readPlugin(): {
  sheet?: { purchaseId: string; status: string };
  client: { getPurchase(id: string): { intentId: string; clientSecret: string } | undefined };
  purchase(itemId: string): Promise<{ state: string }>;
};
declare function readShop(): { rows: number; labels: string[]; message: string } | undefined;

/** Defines `readPlugin` and `readShop` on the page's window, for the evaluations above. */
function defineReaders(): void {
  const sampleGame = (): { game: { plugins: { get(key: string): unknown }; scene: { getScene(key: string): unknown; isActive(key: string): boolean } } } =>
    (window as unknown as { sampleGame: ReturnType<typeof sampleGame> }).sampleGame;

  (window as unknown as Record<string, unknown>).readPlugin = () => sampleGame().game.plugins.get('CodePay');
  (window as unknown as Record<string, unknown>).readShop = () => {
    const scenes = sampleGame()?.game.scene;
    if (scenes === undefined || !scenes.isActive('shop')) return undefined;
    // ShopScene keeps its rows and message line in private fields, which hold the text the shop draws.
    const shop = scenes.getScene('shop') as {
      rows: Array<{ button: { list: Array<{ text?: string }> } }>;
      message: { text: string };
    };
    const labels = shop.rows.map((row) => row.button.list.find((child) => typeof child.text === 'string')?.text ?? '');
    return { rows: shop.rows.length, labels, message: shop.message.text };
  };
}

/** Pays `intentId` on the sandbox wallet page, opened in a second page of the same context with the client secret. */
export async function payInWallet(context: BrowserContext, sandboxUrl: string, sheet: { intentId: string; clientSecret: string }): Promise<Page> {
  const wallet = await context.newPage();
  await wallet.goto(`${sandboxUrl}/wallet#scan=${sheet.clientSecret}`);
  const row = wallet.locator(`tr[data-intent-id="${sheet.intentId}"]`);

  // The page draws the scan code only when the client secret matches the listed intent.
  await expect.poll(() => row.locator('svg.scan-code').getAttribute('data-intent-id'), { timeout: 15_000 }).toBe(sheet.intentId);
  await row.locator('button[data-action="pay"]').click();
  await expect.poll(() => row.locator('td.status').textContent(), { timeout: 15_000 }).toBe('paid');
  return wallet;
}
