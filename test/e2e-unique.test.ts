// Browser test of the sample game's unique item: two players, each in a
// browser context of their own, click buy on the one star crown at the same
// time. One gets the payment sheet and the crown. The other gets the
// reserved message and, after the payment, sees the crown sold out.

import path from 'node:path';

import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { GamePage, hasChromium, launchBrowser, payInWallet, withContexts } from './e2e/browser.js';
import { buildGameOnce, listCharges, listIntents, makeDataDir, readGrants, startGameServer, type GameServer } from './e2e/game-server.js';

const run = hasChromium('sample game unique item');

/** The shop's message for the `reserved` error code (ShopScene). */
const RESERVED_MESSAGE = 'Another player is paying for it right now. Try again in a few minutes.';

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

describe.skipIf(!run)('sample game unique item', { timeout: 120_000 }, () => {
  it('sells the crown to one player', async () => {
    await withContexts(browser, 'unique', async (open) => {
      const first = await GamePage.open(await open(), server.gameUrl);
      const second = await GamePage.open(await open(), server.gameUrl);
      await Promise.all([first.openShop(), second.openShop()]);

      await Promise.all([first.clickBuy('star-crown'), second.clickBuy('star-crown')]);

      // Exactly one player gets a payment sheet; the other gets the reserved message.
      await expect
        .poll(async () => (await Promise.all([first.shopTexts('star-crown'), second.shopTexts('star-crown')])).map((texts) => texts.message), {
          timeout: 20_000,
        })
        .toContain(RESERVED_MESSAGE);
      const firstReserved = (await first.shopTexts('star-crown')).message === RESERVED_MESSAGE;
      const [winner, loser] = firstReserved ? [second, first] : [first, second];

      const sheet = await winner.waitForWaitingSheet();
      expect(await loser.sheet()).toBeUndefined();
      expect(await listIntents(sandboxUrl)).toHaveLength(1);

      // Trying again while the winner pays: still reserved, and no intent for the loser.
      expect(await loser.purchaseThroughPlugin('star-crown')).toBe('reserved');
      expect(await listIntents(sandboxUrl)).toHaveLength(1);

      await payInWallet(winner.page.context(), sandboxUrl, sheet);
      await winner.waitForGrantedSheet(sheet.purchaseId);
      await expect.poll(() => winner.quantity('star-crown')).toBe(1);
      await expect.poll(async () => (await winner.shopTexts('star-crown')).button).toBe('Yours!');

      // The loser's shop, opened again, lists the crown as sold out, and buying it is rejected.
      await loser.closeShop();
      await loser.openShop();
      await expect.poll(async () => (await loser.shopTexts('star-crown')).button, { timeout: 10_000 }).toBe('Sold out');
      await loser.clickBuy('star-crown');
      expect(await loser.sheet()).toBeUndefined();
      expect(await loser.purchaseThroughPlugin('star-crown')).toBe('sold_out');
      expect(await loser.quantity('star-crown')).toBe(0);

      expect(readGrants(databaseFile, await winner.playerId())).toHaveLength(1);
      expect(readGrants(databaseFile, await loser.playerId())).toHaveLength(0);
      const charges = await listCharges(sandboxUrl);
      expect(charges).toHaveLength(1);
      expect(charges[0]!.intentId).toBe(sheet.intentId);
      expect(await listIntents(sandboxUrl)).toHaveLength(1);
    });
  });
});
