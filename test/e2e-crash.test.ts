// Browser test of a game server crash between a payment and its webhook. The
// sandbox sequencer runs in the test process and the game server in a child
// process that points at it (CODE_SEQUENCER_URL), so SIGKILL ends the game
// server while the sandbox keeps its intents, ledger and webhook queue.

import path from 'node:path';

import type { Browser } from 'playwright-core';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startSandbox, type SandboxHandle } from '../server/sandbox/index.js';
import { GamePage, hasChromium, launchBrowser, payInWallet, withContexts } from './e2e/browser.js';
import {
  buildGameOnce,
  controlGet,
  controlSend,
  findFreePort,
  listCharges,
  makeDataDir,
  randomKeySecret,
  readGrants,
  startGameServer,
  type GameServer,
} from './e2e/game-server.js';

const run = hasChromium('sample game crash');

let browser: Browser;
let sandbox: SandboxHandle;
let server: GameServer | undefined;
let dataDir: { dir: string; remove: () => void };

beforeAll(async () => {
  if (!run) return;

  await buildGameOnce();
  dataDir = makeDataDir();
  // A time scale of 0.1 brings the webhook retries to 0.1 s, 0.2 s, 1.7 s and 7.7 s after the payment.
  sandbox = await startSandbox({ port: 0, dataFile: path.join(dataDir.dir, 'sandbox.db'), timeScale: 0.1, logger: pino({ level: 'silent' }) });
  browser = await launchBrowser();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  await sandbox?.close();
  dataDir?.remove();
});

interface WebhookState {
  webhook: { state: string; attempts: number } | null;
}

describe.skipIf(!run)('sample game crash', { timeout: 120_000 }, () => {
  it('grants once after SIGKILL', async () => {
    // The restarted server takes the same port, key secret and files, so the
    // page reconnects to it and the queued webhook reaches it.
    const databaseFile = path.join(dataDir.dir, 'sample-game.db');
    const env = {
      PORT: String(await findFreePort()),
      CODE_SEQUENCER_URL: sandbox.endpoint,
      CODE_SEQUENCER_PUBLIC_KEY: sandbox.publicKey,
      CODE_PAY_KEY_SECRET: randomKeySecret(),
      CODE_PAY_DATABASE_URL: databaseFile,
    };
    const crashing = await startGameServer(env);
    server = crashing;

    await withContexts(browser, 'crash', async (open) => {
      const context = await open();
      const game = await GamePage.open(context, crashing.gameUrl);
      const playerId = await game.playerId();

      await game.openShop();
      await game.clickBuy('golden-ship');
      const sheet = await game.waitForWaitingSheet();

      // Neither the webhook nor the kit's status checks may confirm the payment before the crash.
      await controlSend(sandbox.url, 'POST', '/faults', { webhook: { drop: 'always' }, getStatus: { fail: 'always' } });
      await payInWallet(context, sandbox.url, sheet);
      await expect
        .poll(async () => (await controlGet<WebhookState>(sandbox.url, `/intents/${sheet.intentId}`)).webhook?.attempts ?? 0, {
          timeout: 10_000,
          message: 'the sandbox made no webhook attempt',
        })
        .toBeGreaterThanOrEqual(1);
      expect(readGrants(databaseFile, playerId)).toHaveLength(0);

      await crashing.kill();
      expect(crashing.child.signalCode).toBe('SIGKILL');
      expect(readGrants(databaseFile, playerId)).toHaveLength(0);

      await controlSend(sandbox.url, 'DELETE', '/faults');
      server = await startGameServer(env);

      // Start-up reconciliation (or the next webhook retry) grants the item; the page reconnects and shows it.
      await expect.poll(() => readGrants(databaseFile, playerId).length, { timeout: 30_000 }).toBe(1);
      await expect.poll(() => game.quantity('golden-ship'), { timeout: 30_000 }).toBe(1);
      await expect.poll(async () => (await game.sheet())?.purchaseId, { timeout: 15_000 }).not.toBe(sheet.purchaseId);
      expect(await game.events(sheet.purchaseId)).toContain('purchase:granted');

      // The webhook retry that arrives after the restart changes nothing.
      await expect
        .poll(async () => (await controlGet<WebhookState>(sandbox.url, `/intents/${sheet.intentId}`)).webhook?.state, { timeout: 30_000 })
        .toBe('delivered');
      expect(readGrants(databaseFile, playerId)).toHaveLength(1);

      const charges = await listCharges(sandbox.url);
      expect(charges).toHaveLength(1);
      expect(charges[0]!.intentId).toBe(sheet.intentId);
    });
  });
});
