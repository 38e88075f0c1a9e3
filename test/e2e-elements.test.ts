// Browser test of the sample game's elements flow: the game with
// `?flow=elements` mounts the unmodified @code-wallet/elements page element.
// Its iframes load from https://sdk.getcode.com and call
// https://cash.getcode.com/v1, which the browser context serves from the
// sandbox's /sdk/ pages and RPC endpoint. Every other host is aborted.

import path from 'node:path';

import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { GamePage, hasChromium, launchBrowser, withContexts } from './e2e/browser.js';
import {
  buildGameOnce,
  controlSend,
  listCharges,
  listIntents,
  makeDataDir,
  readGrants,
  startGameServer,
  type GameServer,
} from './e2e/game-server.js';

const run = hasChromium('sample game elements flow');

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

/** Records, in the game page, the events the elements iframes post to it. */
function recordIframeEvents(): void {
  const events: string[] = [];
  (window as unknown as { __iframeEvents: string[] }).__iframeEvents = events;
  window.addEventListener('message', (message: MessageEvent) => {
    const data = message.data as { type?: string; payload?: { event?: string } } | undefined;
    if (data?.type === 'event' && typeof data.payload?.event === 'string') {
      events.push(data.payload.event);
    }
  });
}

describe.skipIf(!run)('sample game elements flow', { timeout: 120_000 }, () => {
  it('pays through the official element', async () => {
    await withContexts(browser, 'elements', async (open) => {
      const context = await open({ codeHostsTo: sandboxUrl });
      await context.addInitScript(recordIframeEvents);

      // Count the plugin's revalidate requests: the element's success event is
      // only a hint, which the plugin passes on as a revalidate request.
      const revalidations: string[] = [];
      await context.routeWebSocket(/\/socket\.io\//, (socket) => {
        const upstream = socket.connectToServer();
        socket.onMessage((message) => {
          if (typeof message === 'string' && /^42\/code-pay,\d*\["revalidate"/.test(message)) {
            revalidations.push(message);
          }
          upstream.send(message);
        });
      });

      const game = await GamePage.open(context, server.gameUrl, '?flow=elements');
      const playerId = await game.playerId();

      await game.openShop();
      await game.clickBuy('golden-ship');
      await expect.poll(async () => (await game.sheet())?.status, { timeout: 15_000 }).toBe('waiting');
      const sheet = (await game.sheet())!;
      expect(await listIntents(sandboxUrl)).toHaveLength(1);

      // The element's iframe is inside the game's element, so it stays visible in fullscreen.
      await expect
        .poll(() => game.page.evaluate(() => document.getElementById('game')!.contains(document.querySelector('iframe[name="payment-request-card"]'))))
        .toBe(true);

      // Webhooks are dropped, so the grant follows the element's success report (or the kit's polling), not the webhook.
      await controlSend(sandboxUrl, 'POST', '/faults', { webhook: { drop: 'always' } });
      const revalidationsBefore = revalidations.length;

      const frame = game.page.frameLocator('iframe[name="payment-request-card"]');
      await expect.poll(() => frame.locator('svg.scan-code').getAttribute('data-intent-id'), { timeout: 20_000 }).toBe(sheet.intentId);
      await expect.poll(() => frame.locator('#pay').isEnabled(), { timeout: 10_000 }).toBe(true);
      await frame.locator('#pay').click();

      await expect
        .poll(() => game.page.evaluate(() => (window as unknown as { __iframeEvents: string[] }).__iframeEvents), { timeout: 15_000 })
        .toContain('intentSubmitted');
      await expect.poll(() => revalidations.length, { timeout: 15_000, message: 'the element reported no success' }).toBeGreaterThan(revalidationsBefore);

      await game.waitForGrantedSheet(sheet.purchaseId);
      await expect.poll(() => game.quantity('golden-ship')).toBe(1);
      expect(await game.page.locator('iframe').count()).toBe(0);

      expect(readGrants(databaseFile, playerId)).toHaveLength(1);
      const charges = await listCharges(sandboxUrl);
      expect(charges).toHaveLength(1);
      expect(charges[0]!.intentId).toBe(sheet.intentId);
      expect(await listIntents(sandboxUrl)).toHaveLength(1);
    });
  });
});
