// The kit's life cycle: start-up errors, the sandbox key secret kept across
// restarts, close() and what the logs may contain.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Purchase, PurchaseAck } from '../protocol/index.js';
import { ConfigError, createCodePay } from '../server/index.js';
import type { SandboxHandle } from '../server/sandbox/index.js';
import {
  GrantRecorder,
  KEY_SECRET,
  connectPlayer,
  kitOptions,
  makeTempDir,
  payIntent,
  randomAddress,
  request,
  sandboxStats,
  startKitServer,
  startTestSandbox,
  waitForState,
} from './kit-helpers.js';

let sandbox: SandboxHandle;
let temp: { dir: string; remove: () => void };

beforeAll(async () => {
  temp = makeTempDir();
  sandbox = await startTestSandbox(temp.dir);
});

afterAll(async () => {
  await sandbox.close();
  temp.remove();
});

describe('start-up', () => {
  it('rejects production without a key secret', async () => {
    const dbFile = join(temp.dir, 'no-secret.db');
    const options = kitOptions({ sandbox, dbFile, destination: randomAddress(), grants: new GrantRecorder() });

    const start = createCodePay({ ...options, keySecret: undefined, sandbox: false });

    await expect(start).rejects.toBeInstanceOf(ConfigError);
    await expect(start).rejects.toThrow(/keySecret/);
    expect(existsSync(dbFile)).toBe(false);
  });

  it('rejects an unavailable store', async () => {
    const options = kitOptions({ sandbox, dbFile: join(temp.dir, 'unused.db'), destination: randomAddress(), grants: new GrantRecorder() });

    const start = createCodePay({ ...options, store: { postgres: 'postgres://127.0.0.1:5432/code_pay' } });

    await expect(start).rejects.toBeInstanceOf(ConfigError);
    await expect(start).rejects.toThrow(/PostgreSQL/);
  });

  it('keeps the sandbox key secret across restarts', async () => {
    const dbFile = join(temp.dir, 'sandbox-secret.db');
    const destination = randomAddress();
    const options = { ...kitOptions({ sandbox, dbFile, destination, grants: new GrantRecorder() }), gameId: 'sandbox-secret', keySecret: undefined };

    const first = await createCodePay(options);
    const original = await first.createPurchase('alice', { itemId: 'sword' });
    await first.close();
    const restarted = await createCodePay(options);
    const retry = await restarted.createPurchase('alice', { itemId: 'sword' });
    const byKey = await restarted.store.getByKey(retry.idempotencyKey);
    await restarted.close();

    expect(existsSync(`${dbFile}.key-secret`)).toBe(true);
    expect(retry.id).toBe(original.id);
    expect(byKey?.id).toBe(original.id);
  });
});

describe('close', () => {
  it('is idempotent and stops polling', async () => {
    const kit = await createCodePay({
      ...kitOptions({ sandbox, dbFile: join(temp.dir, 'close.db'), destination: randomAddress(), grants: new GrantRecorder() }),
      gameId: 'close',
    });
    await kit.createPurchase('alice', { itemId: 'sword' });

    await Promise.all([kit.close(), kit.close()]);
    await kit.close();
    const before = (await sandboxStats(sandbox)).rpc['MicroPayment.GetStatus'] ?? 0;
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = (await sandboxStats(sandbox)).rpc['MicroPayment.GetStatus'] ?? 0;

    expect(after).toBe(before);
  });
});

describe('close with sockets', () => {
  it('disconnects and rejects sockets', async () => {
    const kit = await createCodePay({
      ...kitOptions({ sandbox, dbFile: join(temp.dir, 'close-sockets.db'), destination: randomAddress(), grants: new GrantRecorder() }),
      gameId: 'close-sockets',
    });
    const server = await startKitServer(kit);
    const socket = await connectPlayer(server.url, 'player:alice');
    const disconnected = new Promise<string>((resolve) => socket.once('disconnect', resolve));

    await kit.close();
    const reason = await disconnected;
    const error = await connectPlayer(server.url, 'player:alice').catch((caught: Error) => caught);
    await server.close();

    expect(reason).toBe('io server disconnect');
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/shutting down/);
    expect((error as Error & { data?: { code: string } }).data?.code).toBe('internal');
  });
});

describe('logs', () => {
  it('never contain a secret', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(chunk.toString());
        callback();
      },
    });
    const logger = pino({ level: 'trace' }, sink);
    const token = 'tok_3f9a1c77e0b24d5c9a1f';
    const grants = new GrantRecorder();
    grants.failures = 1;
    const server = await startKitServer();
    const kit = await createCodePay({
      ...kitOptions({ sandbox, dbFile: join(temp.dir, 'logs.db'), destination: randomAddress(), grants }),
      gameId: 'logs',
      logger,
      webhookUrl: `${server.url}/code-pay/webhook`,
      authenticate: (handshake) => {
        if (handshake.auth.token !== token) {
          throw new Error('unknown token');
        }
        return 'alice';
      },
    });
    server.mount(kit);

    const socket = await connectPlayer(server.url, token);
    await connectPlayer(server.url, 'wrong-token').catch(() => undefined);
    const ack = await request<PurchaseAck>(socket, 'purchase', { itemId: 'sword' });
    const purchase = (ack as { purchase: Purchase }).purchase;
    await request<PurchaseAck>(socket, 'purchase', { itemId: 'gems-10', attemptId: 'x' });
    await payIntent(sandbox, purchase.intentId);
    await waitForState(kit, purchase.id, 'granted');
    socket.close();
    await server.close();
    await kit.close();

    const output = lines.join('');
    expect(output).toContain(purchase.id);
    expect(output).toContain('purchase transition');
    expect(output).toContain('grant handler failed');
    expect(output).not.toContain(purchase.clientSecret);
    expect(output).not.toContain(KEY_SECRET);
    expect(output).not.toContain(token);
  });
});
