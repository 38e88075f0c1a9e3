// Runs the purchase store contract against real SQLite files in a temporary
// directory, then checks what only the SQLite driver promises: WAL mode,
// foreign keys, the one-transaction-at-a-time queue, and two processes racing
// on one file.

import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../server/errors.js';
import { MIGRATIONS } from '../server/store/migrations.js';
import { openStore } from '../server/store/index.js';
import type { PurchaseStore, StoreTransaction } from '../server/store/types.js';
import { describeStoreContract, expectCodePayError, newPurchase } from './store-contract.js';

const directory = mkdtempSync(join(tmpdir(), 'code-pay-store-'));
let fileCount = 0;

function newDatabaseFile(): string {
  fileCount += 1;
  return join(directory, `store-${fileCount}.db`);
}

const silent = pino({ level: 'silent' });

afterAll(() => {
  rmSync(directory, { recursive: true, force: true });
});

describeStoreContract('SQLite', {
  async createDatabase() {
    const file = newDatabaseFile();
    return { open: () => openStore({ sqlite: file }, silent) };
  },
});

const execFileAsync = promisify(execFile);

/** Runs one task in a separate Node process on the same database file. */
async function runWorker(task: Record<string, unknown>): Promise<Record<string, unknown>> {
  const { stdout } = await execFileAsync(process.execPath, ['--import', 'tsx', 'test/store-sqlite-worker.ts', JSON.stringify(task)], {
    cwd: join(import.meta.dirname, '..'),
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe('SQLite store', () => {
  const opened: PurchaseStore[] = [];

  async function open(file = newDatabaseFile()): Promise<PurchaseStore> {
    const store = await openStore({ sqlite: file }, silent);
    opened.push(store);
    return store;
  }

  afterEach(async () => {
    for (const store of opened.splice(0)) {
      await store.close();
    }
  });

  it('opens the file in WAL mode with foreign keys on', async () => {
    const store = await open();

    const [journal] = await store.transaction((tx) => tx.query<{ journal_mode: string }>('PRAGMA journal_mode'));
    const [foreignKeys] = await store.transaction((tx) => tx.query<{ foreign_keys: number }>('PRAGMA foreign_keys'));

    expect(journal.journal_mode).toBe('wal');
    expect(foreignKeys.foreign_keys).toBe(1);
    expect(store.dialect).toBe('sqlite');
  });

  it('rejects a store call inside a grant handler', async () => {
    const store = await open();
    const { purchase } = await store.insertPurchase(newPurchase());
    await store.transition({ purchaseId: purchase.id, to: 'paid', source: 'webhook', at: Date.now() });

    const rejected = store.grant(
      purchase.id,
      async () => {
        await store.getById(purchase.id);
      },
      Date.now(),
    );

    const error = await expectCodePayError(rejected, 'internal');
    expect(error.message).toContain('Use the `tx` argument');
    expect((await store.getById(purchase.id))?.state).toBe('paid');
  });

  it('allows store calls from work a handler started', async () => {
    const store = await open();
    const { purchase } = await store.insertPurchase(newPurchase());
    await store.transition({ purchaseId: purchase.id, to: 'paid', source: 'webhook', at: Date.now() });
    let later: Promise<unknown> | undefined;

    await store.grant(
      purchase.id,
      () => {
        later = new Promise((resolve, reject) => {
          setTimeout(() => store.getById(purchase.id).then(resolve, reject), 20);
        });
      },
      Date.now(),
    );

    expect(await later).toMatchObject({ id: purchase.id, state: 'granted' });
  });

  it('rejects a transaction handle used after commit', async () => {
    const store = await open();
    let leaked: StoreTransaction | undefined;

    await store.transaction(async (tx) => {
      leaked = tx;
    });

    await expectCodePayError(leaked!.query('SELECT 1'), 'internal');
  });

  it('rejects transaction control statements', async () => {
    const store = await open();

    for (const statement of ['COMMIT', 'rollback', '  BEGIN IMMEDIATE', 'SAVEPOINT inner']) {
      await expectCodePayError(
        store.transaction((tx) => tx.execute(statement)),
        'internal',
      );
    }
  });

  it('binds repeated and boolean parameters', async () => {
    const store = await open();

    const rows = await store.transaction((tx) => tx.query<{ a: string; b: string; c: number }>('SELECT $2 AS a, $1 AS b, $3 AS c, $2 AS d', ['x', 'y', true]));

    expect(rows).toEqual([{ a: 'y', b: 'x', c: 1, d: 'y' }]);
  });

  it('rejects calls after close', async () => {
    const store = await openStore({ sqlite: newDatabaseFile() }, silent);
    await store.close();

    await expectCodePayError(store.getById('purchase-1'), 'internal');
  });

  it('waits for a running grant before closing', async () => {
    const store = await openStore({ sqlite: newDatabaseFile() }, silent);
    const { purchase } = await store.insertPurchase(newPurchase());
    await store.transition({ purchaseId: purchase.id, to: 'paid', source: 'webhook', at: Date.now() });

    const granting = store.grant(purchase.id, () => new Promise((resolve) => setTimeout(resolve, 20)), Date.now());
    await store.close();

    expect((await granting).status).toBe('granted');
  });

  it('creates one row for inserts from two processes', async () => {
    const file = newDatabaseFile();
    const purchase = newPurchase();
    const startAt = Date.now() + 1_500;

    const results = await Promise.all([
      runWorker({ file, startAt, action: 'insert', purchase, count: 50 }),
      runWorker({ file, startAt, action: 'insert', purchase, count: 50 }),
    ]);

    expect((results[0].created as number) + (results[1].created as number)).toBe(1);
    expect(results[0].ids).toEqual(results[1].ids);
    const store = await open(file);
    expect(await store.listByPlayer(purchase.playerId)).toHaveLength(1);
    expect(await store.transitions((results[0].ids as string[])[0])).toHaveLength(1);
  });

  it('makes another process wait for a grant', async () => {
    const file = newDatabaseFile();
    const store = await open(file);
    const { purchase } = await store.insertPurchase(newPurchase());
    await store.transition({ purchaseId: purchase.id, to: 'paid', source: 'webhook', at: Date.now() });
    const otherPurchase = newPurchase({ playerId: 'player-2' });

    const worker = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/store-sqlite-worker.ts', JSON.stringify({ file, startAt: 0, action: 'insert', purchase: otherPurchase, waitForGo: true })],
      { cwd: join(import.meta.dirname, '..'), stdio: ['pipe', 'pipe', 'inherit'] },
    );
    let output = '';
    worker.stdout.setEncoding('utf8');
    const ready = new Promise<void>((resolve) => {
      worker.stdout.on('data', (chunk: string) => {
        output += chunk;
        if (output.includes('ready\n')) {
          resolve();
        }
      });
    });
    const exited = once(worker, 'exit');
    await ready;

    // The handler keeps the write lock while the other process tries to insert.
    const granting = store.grant(
      purchase.id,
      async (_purchase, tx) => {
        worker.stdin.end('go\n');
        await new Promise((resolve) => setTimeout(resolve, 500));
        const rows = await tx.query('SELECT id FROM code_pay_purchases WHERE player_id = $1', ['player-2']);
        expect(rows).toEqual([]);
      },
      Date.now(),
    );

    expect((await granting).status).toBe('granted');
    const [exitCode] = await exited;
    expect(exitCode).toBe(0);
    const result = JSON.parse(output.slice(output.indexOf('ready\n') + 'ready\n'.length)) as { created: number };
    expect(result.created).toBe(1);
    expect(await store.getByKey(otherPurchase.idempotencyKey)).toBeDefined();
  });

  it('migrates a new file opened by two processes at once', async () => {
    const file = newDatabaseFile();
    const startAt = Date.now() + 1_500;

    await Promise.all([runWorker({ file, startAt, action: 'open' }), runWorker({ file, startAt, action: 'open' })]);

    const store = await open(file);
    const versions = await store.transaction((tx) => tx.query('SELECT version FROM code_pay_schema_version'));
    expect(versions).toEqual(MIGRATIONS.map((migration) => ({ version: migration.version })));
  });

  it('refuses a schema newer than the kit', async () => {
    const file = newDatabaseFile();
    const store = await openStore({ sqlite: file }, silent);
    await store.transaction((tx) => tx.execute("INSERT INTO code_pay_schema_version (version, name, applied_at) VALUES (99, 'future', 0)"));
    await store.close();

    await expect(openStore({ sqlite: file }, silent)).rejects.toThrow(/schema is at version 99/);
  });
});

describe('openStore', () => {
  it('rejects a postgres setting that is no URL', async () => {
    const opening = openStore({ postgres: '127.0.0.1/code_pay' }, silent);

    await expect(opening).rejects.toBeInstanceOf(ConfigError);
    await expect(opening).rejects.toThrow('expected a connection URL');
  });

  it('rejects a missing or ambiguous setting', async () => {
    await expect(openStore({} as { sqlite: string }, silent)).rejects.toThrow(/exactly one of `sqlite`/);
    await expect(openStore({ sqlite: 'a.db', postgres: 'postgres://x' } as unknown as { sqlite: string }, silent)).rejects.toThrow(
      /exactly one of/,
    );
    await expect(openStore({ sqlite: '  ' }, silent)).rejects.toThrow(/path of the database file/);
    await expect(openStore(null as unknown as { sqlite: string }, silent)).rejects.toBeInstanceOf(ConfigError);
  });

  it('names the path it cannot open', async () => {
    const missing = join(directory, 'no-such-directory', 'store.db');

    await expect(openStore({ sqlite: missing }, silent)).rejects.toThrow(missing);
  });
});
