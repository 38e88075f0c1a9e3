// The plugin's socket client against the real kit and the sandbox: a
// purchase is requested, paid in the simulated wallet and granted, and a
// consumable retried after a "reload" reuses its stored attempt id.

import { join } from 'node:path';

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { MemoryStorage } from '../plugin/attempts.js';
import { CodePayClient } from '../plugin/client.js';
import { createCodePay, type CodePay } from '../server/index.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import { GrantRecorder, kitOptions, makeTempDir, payIntent, randomAddress, startKitServer, startTestSandbox, type KitServer } from './kit-helpers.js';

let sandbox: SandboxHandle;
let temp: { dir: string; remove: () => void };
let kit: CodePay;
let server: KitServer;
let grants: GrantRecorder;
const clients: CodePayClient[] = [];

function newClient(storage = new MemoryStorage()): CodePayClient {
  const client = new CodePayClient({
    serverUrl: server.url,
    auth: 'player:alice',
    storage,
    socketOptions: { transports: ['websocket'] },
    logger: pino({ level: 'silent' }),
  });
  client.connect();
  clients.push(client);
  return client;
}

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox(temp.dir);
  grants = new GrantRecorder();
  server = await startKitServer();
  kit = await createCodePay({
    ...kitOptions({ sandbox, dbFile: join(temp.dir, 'plugin.db'), destination: randomAddress(), grants }),
    gameId: 'plugin-client',
    webhookUrl: `${server.url}/code-pay/webhook`,
  });
  server.mount(kit);
});

afterAll(async () => {
  for (const client of clients) {
    client.destroy();
  }
  await server.close();
  await kit.close();
  await sandbox.close();
  temp.remove();
});

describe('plugin client with the kit', () => {
  it('purchases, pays and owns an item', async () => {
    const client = newClient();

    const pending = await client.requestPurchase('sword');
    const granted = client.waitForGrant(pending.id);
    await payIntent(sandbox, pending.intentId);

    expect((await granted).state).toBe('granted');
    expect(client.owns('sword')).toBe(true);
    expect(grants.countFor(pending.id)).toBe(1);
  });

  it('reuses the attempt id after a reload', async () => {
    const storage = new MemoryStorage();
    const first = newClient(storage);
    const original = await first.requestPurchase('gems-10');
    first.destroy();

    const reloaded = newClient(storage);
    const retry = await reloaded.requestPurchase('gems-10');

    expect(retry.id).toBe(original.id);
    expect(retry.attemptId).toBe(original.attemptId);
    expect(retry.intentId).toBe(original.intentId);
  });

  it('publishes the sandbox stream URL', async () => {
    const client = newClient();

    await client.catalog();

    expect(client.streamUrl).toBe(`${sandbox.endpoint.replace(/^http/, 'ws')}/ws`);
  });
});
