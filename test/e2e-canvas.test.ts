// Browser tests of the sample game's canvas payment flow, end to end. The
// game server runs as `npm start` runs it (kit on SQLite, sandbox sequencer in
// the same process) in a child process, and the built game runs in Chromium.
// The sandbox wallet page in a second tab pays the intent the sheet shows.

import path from 'node:path';

import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  GamePage,
  hasChromium,
  IMAGES_DIR,
  launchBrowser,
  payInWallet,
  UPDATE_SCREENSHOTS,
  withContexts,
} from './e2e/browser.js';
import {
  buildGameOnce,
  listCharges,
  listIntents,
  makeDataDir,
  readGrants,
  readQuantity,
  startGameServer,
  type GameServer,
} from './e2e/game-server.js';

const run = hasChromium('sample game canvas flow');

let browser: Browser;
let server: GameServer;
let sandboxUrl: string;
let dataDir: { dir: string; remove: () => void };
let databaseFile: string;

beforeAll(async () => {
  if (!run) return;

  await buildGameOnce();
  dataDir = makeDataDir();
  databaseFile = path.join(dataDir.dir, 'sample-game.db');
  server = await startGameServer({ CODE_PAY_DATABASE_URL: databaseFile });
  sandboxUrl = server.sandboxUrl!;
  browser = await launchBrowser();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  dataDir?.remove();
});

async function intentCount(): Promise<number> {
  return (await listIntents(sandboxUrl)).length;
}

// A test makes up to three payments in the browser, which can take longer
// than the suite's default of 60 s while the other suites run in parallel.
describe.skipIf(!run)('sample game canvas flow', { timeout: 120_000 }, () => {
  it('buys the golden ship once', async () => {
    await withContexts(browser, 'permanent', async (open) => {
      // Each test's context is a new player: its own storage, so its own guest.
      const context = await open();
      const game = await GamePage.open(context, server.gameUrl);

      await game.openShop();
      if (UPDATE_SCREENSHOTS) {
        await game.page.screenshot({ path: path.join(IMAGES_DIR, 'shop.png') });
      }
      const intentsBefore = await intentCount();

      await game.clickBuy('golden-ship');
      const sheet = await game.waitForWaitingSheet();
      expect(await intentCount()).toBe(intentsBefore + 1);
      if (UPDATE_SCREENSHOTS) {
        await game.page.screenshot({ path: path.join(IMAGES_DIR, 'payment-sheet.png') });
      }

      await payInWallet(context, sandboxUrl, sheet);

      await game.waitForGrantedSheet(sheet.purchaseId);
      // "loading" shows until the scan code is drawn, which may take less than one polling interval.
      // "scanned" comes from the sequencer's message stream, when it reports the wallet's scan before the payment.
      const shown = (await game.sheetStatuses(sheet.purchaseId)).filter((status) => status !== 'loading');
      expect(shown.join(' ')).toMatch(/^waiting (scanned )?paid granted$/);
      expect(await game.events(sheet.purchaseId)).toContain('purchase:paid');
      await expect.poll(() => game.quantity('golden-ship')).toBe(1);
      await expect.poll(() => game.shipTexture()).toBe('golden-ship');
      await expect.poll(async () => (await game.shopTexts('golden-ship')).button).toBe('Owned');

      const playerId = await game.playerId();
      expect(readGrants(databaseFile, playerId)).toHaveLength(1);
      const charges = (await listCharges(sandboxUrl)).filter((charge) => charge.intentId === sheet.intentId);
      expect(charges).toHaveLength(1);

      // Buying again: the plugin rejects with already_owned and no intent is created.
      const intentsAfterGrant = await intentCount();
      expect(await game.purchaseThroughPlugin('golden-ship')).toBe('already_owned');
      expect(await intentCount()).toBe(intentsAfterGrant);
      expect(await game.sheet()).toBeUndefined();
      expect(readGrants(databaseFile, playerId)).toHaveLength(1);
    });
  });

  it('reopens a pending sheet after reload', async () => {
    await withContexts(browser, 'reload', async (open) => {
      // Each test's context is a new player: its own storage, so its own guest.
      const context = await open();
      const game = await GamePage.open(context, server.gameUrl);

      await game.openShop();
      await game.clickBuy('golden-ship');
      const sheet = await game.waitForWaitingSheet();
      const intentsBefore = await intentCount();

      await game.reload();
      const reopened = await game.waitForWaitingSheet();
      expect(reopened.purchaseId).toBe(sheet.purchaseId);
      expect(reopened.intentId).toBe(sheet.intentId);
      expect(await intentCount()).toBe(intentsBefore);

      await payInWallet(context, sandboxUrl, reopened);
      await game.waitForGrantedSheet(sheet.purchaseId);
      await expect.poll(() => game.quantity('golden-ship')).toBe(1);

      const playerId = await game.playerId();
      expect(readGrants(databaseFile, playerId)).toHaveLength(1);
      expect(readQuantity(databaseFile, playerId, 'golden-ship')).toBe(1);
      expect((await listCharges(sandboxUrl)).filter((charge) => charge.intentId === sheet.intentId)).toHaveLength(1);
    });
  });

  it('charges each consumable purchase once', async () => {
    await withContexts(browser, 'consumable', async (open) => {
      // Each test's context is a new player: its own storage, so its own guest.
      const context = await open();
      const game = await GamePage.open(context, server.gameUrl);

      const playerId = await game.playerId();
      await game.openShop();
      const intentIds: string[] = [];

      // Two purchases of the pack: two intents, two charges, two grants.
      for (let round = 1; round <= 2; round += 1) {
        await game.clickBuy('extra-lives');
        const sheet = await game.waitForWaitingSheet();
        expect(intentIds).not.toContain(sheet.intentId);
        intentIds.push(sheet.intentId);

        const wallet = await payInWallet(context, sandboxUrl, sheet);
        await wallet.close();
        await game.waitForGrantedSheet(sheet.purchaseId);
        await expect.poll(() => game.quantity('extra-lives')).toBe(round);
      }
      expect(readGrants(databaseFile, playerId)).toHaveLength(2);
      const charges = (await listCharges(sandboxUrl)).filter((charge) => intentIds.includes(charge.intentId));
      expect(charges).toHaveLength(2);

      // A third purchase whose acknowledgement never arrives: the server
      // created the purchase and its intent, the page reloads, and buying
      // again resends the stored attempt id, so the same intent comes back.
      let droppedAcks = 0;
      await game.page.routeWebSocket(/\/socket\.io\//, (socket) => {
        const server = socket.connectToServer();
        server.onMessage((message) => {
          if (typeof message === 'string' && /^43\/code-pay,\d+\[\{"ok":true,"purchase"/.test(message) && droppedAcks === 0) {
            droppedAcks += 1;
            return;
          }
          socket.send(message);
        });
      });
      await game.reload();
      const intentsBefore = await listIntents(sandboxUrl);

      await game.openShop();
      await game.clickBuy('extra-lives');
      await expect.poll(() => droppedAcks, { timeout: 15_000, message: 'no purchase acknowledgement went past the socket route' }).toBe(1);
      await expect.poll(async () => (await listIntents(sandboxUrl)).length, { timeout: 15_000 }).toBe(intentsBefore.length + 1);
      const retriedIntent = (await listIntents(sandboxUrl))[0]!;
      expect(intentIds).not.toContain(retriedIntent.intentId);
      expect(await game.sheet()).toBeUndefined();

      await game.reload();
      await game.openShop();
      await game.clickBuy('extra-lives');
      const sheet = await game.waitForWaitingSheet();
      expect(sheet.intentId).toBe(retriedIntent.intentId);
      expect(await intentCount()).toBe(intentsBefore.length + 1);

      await payInWallet(context, sandboxUrl, sheet);
      await game.waitForGrantedSheet(sheet.purchaseId);
      await expect.poll(() => game.quantity('extra-lives')).toBe(3);

      expect(readGrants(databaseFile, playerId)).toHaveLength(3);
      const retriedCharges = (await listCharges(sandboxUrl)).filter((charge) => charge.intentId === retriedIntent.intentId);
      expect(retriedCharges).toHaveLength(1);
    });
  });
});
