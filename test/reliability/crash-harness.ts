// The crash-matrix harness: runs test/reliability/crash-server.ts as a child
// process against a sandbox sequencer in the test process, drives players
// that buy, pay, decline, retry, reload and reconnect the way the plugin does,
// kills the server with SIGKILL at a randomly chosen crash point, restarts it
// and repeats. `checkInvariants` then compares the store with the sandbox.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';

import Database from 'better-sqlite3';
import { build } from 'esbuild';
import pg from 'pg';
import { io as connectClient, type Socket } from 'socket.io-client';

import { CODE_PAY_NAMESPACE, type ClientToServerEvents, type Purchase, type PurchaseAck, type ServerToClientEvents, type SyncAck } from '../../protocol/index.js';
import { CRASH_POINTS, type CrashPointName } from '../../server/crash-points.js';
import type { SandboxHandle } from '../../server/sandbox/index.js';
import { CRASH_CATALOG } from './crash-catalog.js';

type ServerProcess = ChildProcessByStdio<Writable, Readable, Readable>;
type PlayerSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

const REPOSITORY_ROOT = path.resolve(import.meta.dirname, '..', '..');
const SERVER_SOURCE = path.join(REPOSITORY_ROOT, 'test', 'reliability', 'crash-server.ts');
/** Inside the repository, so the bundle's package imports resolve to its node_modules. */
const SERVER_BUNDLE = path.join(REPOSITORY_ROOT, 'node_modules', '.cache', 'phaser-code-pay-reliability', 'crash-server.mjs');

/**
 * Bundles the crash server into one ES module with the packages left as
 * imports. Plain `node` starts the bundle with about half the CPU that
 * loading the TypeScript sources through tsx takes, and the matrix starts it
 * hundreds of times.
 */
export async function bundleCrashServer(): Promise<void> {
  mkdirSync(path.dirname(SERVER_BUNDLE), { recursive: true });
  await build({
    entryPoints: [SERVER_SOURCE],
    outfile: SERVER_BUNDLE,
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    logLevel: 'warning',
  });
}

/** A fixed test secret, so every restart derives the same idempotency keys. */
const KEY_SECRET = '5e1d0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a2918070605a';

/** Seeded PRNG (mulberry32), so a failing run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** How one server life is armed: a crash point and how many passes of it to survive, or nothing. */
export interface Arming {
  point: CrashPointName | undefined;
  survivePasses: number;
}

/** A server process that loaded its modules and waits for `start()`. */
class WarmServer {
  readonly arming: Arming;
  private readonly child: ServerProcess;
  private output = '';
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(env: Record<string, string>, arming: Arming) {
    this.arming = arming;
    const armingEnv: Record<string, string> =
      arming.point === undefined ? {} : { CODE_PAY_CRASH_POINT: arming.point, CODE_PAY_CRASH_AFTER: String(arming.survivePasses) };
    this.child = spawn(process.execPath, [SERVER_BUNDLE], {
      cwd: REPOSITORY_ROOT,
      env: { ...withoutCrashVariables(process.env), ...env, ...armingEnv, CRASH_SERVER_WAIT: 'stdin' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stdout.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => this.child.once('close', (code, signal) => resolve({ code, signal })));
  }

  /** Opens the store and the port; resolves once the server printed that it is ready. */
  async start(timeoutMs: number): Promise<void> {
    this.child.stdin.write('go\n');
    const deadline = Date.now() + timeoutMs;
    while (!this.output.includes('crash-server ready')) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        // An armed point can fire during start-up (the reconciliation); the caller sees the exit.
        return;
      }
      if (Date.now() > deadline) {
        throw new Error(`The crash server did not start within ${timeoutMs} ms. Output:\n${this.output}`);
      }
      await sleep(10);
    }
  }

  get firedPoint(): string | undefined {
    return /code-pay crash point fired: (\S+)/.exec(this.output)?.[1];
  }

  get log(): string {
    return this.output;
  }

  /** Resolves with true when the process exited by itself within `ms`. */
  async exitWithin(ms: number): Promise<boolean> {
    const timer = sleep(ms).then(() => false);
    return Promise.race([this.exited.then(() => true), timer]);
  }

  /** True when the process ended before the harness killed it. */
  exitedBySelf = false;

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
    } else {
      this.exitedBySelf = true;
    }
    await this.exited;
  }

  /** Stops the server with SIGTERM (a clean shutdown). */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
    }
    await this.exited;
  }
}

function withoutCrashVariables(env: NodeJS.ProcessEnv): Record<string, string> {
  const copy: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && !name.startsWith('CODE_PAY_CRASH_')) {
      copy[name] = value;
    }
  }
  return copy;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What a player's device remembers, as the plugin keeps it in localStorage. */
interface Device {
  /** Attempt ids of consumable purchases sent but not acknowledged, by item id; reused on every retry. */
  pendingAttempts: Map<string, string>;
}

/** One simulated player: a socket that reconnects, and a loop of purchases. */
class Player {
  readonly id: string;
  private readonly url: string;
  private readonly random: () => number;
  private readonly sandbox: SandboxHandle;
  private readonly device: Device = { pendingAttempts: new Map() };
  private socket: PlayerSocket | undefined;
  /** Every purchase the player saw acknowledged, by id. */
  readonly purchases = new Map<string, Purchase>();
  stopped = false;

  constructor(id: string, url: string, sandbox: SandboxHandle, random: () => number) {
    this.id = id;
    this.url = url;
    this.sandbox = sandbox;
    this.random = random;
  }

  async run(): Promise<void> {
    this.connect();
    while (!this.stopped) {
      try {
        await this.step();
      } catch {
        // A timeout or disconnect: the server is down or restarting; try again shortly.
        await sleep(50);
      }
    }
    this.socket?.close();
  }

  /** Opens a new socket that reconnects on its own, as the plugin's does. */
  private connect(): void {
    this.socket?.close();
    this.socket = connectClient(`${this.url}${CODE_PAY_NAMESPACE}`, {
      auth: { token: `player:${this.id}` },
      transports: ['websocket'],
      reconnection: true,
      reconnectionDelay: 50,
      reconnectionDelayMax: 200,
      forceNew: true,
    });
    this.socket.on('purchase:updated', (purchase) => this.purchases.set(purchase.id, purchase));
  }

  private async step(): Promise<void> {
    const roll = this.random();
    if (roll < 0.08) {
      // A reload: a new socket, then sync and re-validate the open purchases, as the plugin does on boot.
      this.connect();
      await this.syncAndRevalidate();
      return;
    }
    if (roll < 0.2) {
      await this.syncAndRevalidate();
      return;
    }
    await this.buy();
  }

  private async buy(): Promise<void> {
    const item = CRASH_CATALOG[Math.floor(this.random() * CRASH_CATALOG.length)]!;
    let attemptId: string | undefined;
    if (item.kind === 'consumable') {
      attemptId = this.device.pendingAttempts.get(item.id) ?? randomUUID();
      this.device.pendingAttempts.set(item.id, attemptId);
    }

    const ack = await this.emit<PurchaseAck>('purchase', attemptId === undefined ? { itemId: item.id } : { itemId: item.id, attemptId });
    if (!ack.ok) {
      if (ack.error.code !== 'sequencer_unavailable' && ack.error.code !== 'internal') {
        this.device.pendingAttempts.delete(item.id);
      }
      return;
    }
    this.device.pendingAttempts.delete(item.id);
    const purchase = ack.purchase;
    this.purchases.set(purchase.id, purchase);
    if (purchase.state !== 'pending' && purchase.state !== 'cancelled') {
      return;
    }

    const choice = this.random();
    if (choice < 0.6) {
      await this.wallet(purchase.intentId, 'pay');
      await this.emit<PurchaseAck>('revalidate', { purchaseId: purchase.id });
    } else if (choice < 0.75) {
      await this.wallet(purchase.intentId, 'reject');
      await this.emit<PurchaseAck>('revalidate', { purchaseId: purchase.id, hint: 'cancelled' });
    }
  }

  private async syncAndRevalidate(): Promise<void> {
    const sync = await this.emit<SyncAck>('sync');
    if (!sync.ok) {
      return;
    }
    for (const purchase of sync.purchases) {
      this.purchases.set(purchase.id, purchase);
      if (purchase.state === 'pending' || purchase.state === 'paid' || purchase.state === 'cancelled') {
        await this.emit<PurchaseAck>('revalidate', { purchaseId: purchase.id });
      }
    }
  }

  /** Pays or declines in the sandbox wallet; a 409 (already paid or declined) is an expected outcome. */
  private async wallet(intentId: string, action: 'pay' | 'reject'): Promise<void> {
    await fetch(`${this.sandbox.url}/control/intents/${intentId}/${action}`, { method: 'POST' });
  }

  private emit<Response>(event: keyof ClientToServerEvents, ...payload: unknown[]): Promise<Response> {
    const socket = this.socket;
    if (socket === undefined || !socket.connected) {
      return sleep(30).then(() => Promise.reject(new Error('not connected')));
    }
    const untyped = socket.timeout(1_500) as unknown as { emitWithAck(event: string, ...args: unknown[]): Promise<Response> };
    return untyped.emitWithAck(event, ...payload);
  }
}

export interface CrashRunOptions {
  seed: number;
  /** Server lives, each ended by SIGKILL. */
  rounds: number;
  players: number;
  sandbox: SandboxHandle;
  /** The store: a SQLite file path, or a postgres:// URL of an empty database. */
  database: string;
  /** Longest life of one server before the harness kills it from outside (ms). */
  maxLifeMs: number;
  onRound?: (round: number, arming: Arming, fired: string | undefined, elapsedMs: number) => void;
}

export interface CrashRunResult {
  /** Kills by an armed crash point, by point name. */
  fired: Map<string, number>;
  /** Kills by the harness because the armed point was not reached in time. */
  externalKills: number;
  players: Player[];
}

/** Servers loading their modules ahead of their turn. */
const WARM_SERVERS = 2;

/** Picks the next server's arming: usually a crash point with 0 to 2 passes to survive. */
function chooseArming(random: () => number): Arming {
  const point = CRASH_POINTS[Math.floor(random() * CRASH_POINTS.length)]!;
  return { point, survivePasses: Math.floor(random() * 3) };
}

/**
 * Runs `rounds` server lives with players buying throughout, then starts a
 * last unarmed server, stops the players and waits until every charge in the
 * sandbox ledger is granted (or `settleMs` passed). Leaves no process behind.
 */
export async function runCrashMatrix(options: CrashRunOptions): Promise<CrashRunResult> {
  const random = seededRandom(options.seed);
  await bundleCrashServer();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = {
    CRASH_SERVER_PORT: String(port),
    CRASH_SERVER_DB: options.database,
    CODE_SEQUENCER_URL: options.sandbox.endpoint,
    CODE_SEQUENCER_PUBLIC_KEY: options.sandbox.publicKey,
    CODE_PAY_KEY_SECRET: KEY_SECRET,
    LOG_LEVEL: process.env.CRASH_SERVER_LOG_LEVEL ?? 'error',
  };

  const players = Array.from({ length: options.players }, (_, index) => new Player(`p${index}`, url, options.sandbox, seededRandom(options.seed + index + 1)));
  const running = players.map((player) => player.run());
  const fired = new Map<string, number>();
  let externalKills = 0;

  // Servers load their modules ahead of their turn, two at a time, because
  // loading takes longer than most server lives.
  const armings: Arming[] = Array.from({ length: options.rounds }, () => chooseArming(random));
  armings.push({ point: undefined, survivePasses: 0 });
  const lifetimes = Array.from({ length: options.rounds }, () => 100 + Math.floor(random() * options.maxLifeMs));
  const warm: WarmServer[] = armings.slice(0, WARM_SERVERS).map((arming) => new WarmServer(env, arming));
  let spawned = warm.length;
  let active: WarmServer | undefined;

  try {
    for (let round = 0; round < options.rounds; round += 1) {
      const roundStarted = Date.now();
      const current = warm.shift()!;
      active = current;
      await current.start(60_000);
      if (spawned < armings.length) {
        warm.push(new WarmServer(env, armings[spawned]!));
        spawned += 1;
      }

      await current.exitWithin(lifetimes[round]!);
      await current.kill();

      const point = current.firedPoint;
      if (point === undefined && current.exitedBySelf) {
        throw new Error(`The crash server exited without a crash point firing. Output:\n${current.log}`);
      }
      if (point === undefined) {
        externalKills += 1;
      } else {
        fired.set(point, (fired.get(point) ?? 0) + 1);
      }
      options.onRound?.(round, current.arming, point, Date.now() - roundStarted);
    }

    const last = warm.shift()!;
    active = last;
    await last.start(60_000);
    await sleep(500);
    for (const player of players) {
      player.stopped = true;
    }
    await Promise.all(running);
    await waitForSettled(options.sandbox, options.database, 60_000);
    await last.stop();
  } finally {
    for (const player of players) {
      player.stopped = true;
    }
    await Promise.all([...warm, ...(active ? [active] : [])].map((server) => server.kill()));
  }

  return { fired, externalKills, players };
}

/** Runs one read on the store: a SQLite file path, or a postgres:// URL. */
async function readRows<Row>(database: string, sql: string): Promise<Row[]> {
  if (/^postgres(ql)?:\/\//.test(database)) {
    const client = new pg.Client({ connectionString: database });
    await client.connect();
    try {
      return (await client.query(sql)).rows as Row[];
    } finally {
      await client.end();
    }
  }

  const db = new Database(database, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all() as Row[];
  } finally {
    db.close();
  }
}

/** Waits until every charge in the ledger is granted in the store, or the time is up. */
async function waitForSettled(sandbox: SandboxHandle, database: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { entries } = await getJson<{ entries: LedgerEntry[] }>(`${sandbox.url}/control/ledger`);
    const rows = await readRows<{ intent_id: string }>(database, "SELECT intent_id FROM code_pay_purchases WHERE state IN ('granted', 'failed')");
    const granted = new Set(rows.map((row) => row.intent_id));
    if (entries.every((entry) => granted.has(entry.intentId))) {
      return;
    }
    await sleep(200);
  }
}

interface LedgerEntry {
  intentId: string;
  amount: number;
  currency: string;
}

interface SandboxIntentRow {
  intentId: string;
  status: string;
}

async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url);
  if (!response.ok) {
    throw new Error(`GET ${url} responded ${response.status}`);
  }
  return (await response.json()) as T;
}

interface PurchaseRow {
  id: string;
  idempotency_key: string;
  player_id: string;
  item_id: string;
  kind: string;
  state: string;
  intent_id: string;
  attempt_id: string | null;
  failure_reason: string | null;
}

/** Every invariant that failed, as readable sentences; empty when all hold. */
export async function checkInvariants(sandbox: SandboxHandle, database: string): Promise<string[]> {
  const problems: string[] = [];
  const { entries: charges } = await getJson<{ entries: LedgerEntry[] }>(`${sandbox.url}/control/ledger`);
  const { intents } = await getJson<{ intents: SandboxIntentRow[] }>(`${sandbox.url}/control/intents?limit=10000`);

  const purchases = await readRows<PurchaseRow>(database, 'SELECT * FROM code_pay_purchases');
  const inventory = await readRows<{ purchase_id: string; player_id: string; item_id: string }>(
    database,
    'SELECT purchase_id, player_id, item_id FROM reliability_inventory',
  );

  const byIntent = new Map(purchases.map((purchase) => [purchase.intent_id, purchase]));
  const chargesByIntent = countBy(charges, (charge) => charge.intentId);
  const grantsByPurchase = countBy(inventory, (row) => row.purchase_id);

  // At most one intent per key: one purchase per scope, so one per player and
  // item for unique and permanent items and one per attempt id for consumables.
  const scopes = countBy(purchases, (purchase) =>
    purchase.kind === 'consumable' ? `${purchase.player_id}/${purchase.item_id}/${purchase.attempt_id}` : `${purchase.player_id}/${purchase.item_id}`,
  );
  for (const [scope, count] of scopes) {
    if (count > 1) {
      problems.push(`scope ${scope} has ${count} purchases; expected at most one intent per idempotency key`);
    }
  }

  for (const [intentId, count] of chargesByIntent) {
    if (count > 1) {
      problems.push(`intent ${intentId} was charged ${count} times`);
    }
    const purchase = byIntent.get(intentId);
    if (purchase === undefined) {
      problems.push(`intent ${intentId} was charged but no purchase holds it`);
      continue;
    }
    if (purchase.state !== 'granted') {
      problems.push(`purchase ${purchase.id} (${purchase.kind} ${purchase.item_id}) is ${purchase.state} although its intent was charged`);
    }
    const grants = grantsByPurchase.get(purchase.id) ?? 0;
    if (grants !== 1) {
      problems.push(`purchase ${purchase.id} (${purchase.kind} ${purchase.item_id}) was charged once and granted ${grants} times`);
    }
  }

  // At most one charge per unique or permanent item per player, and per unique item overall.
  const chargedScopes = countBy(
    charges.map((charge) => byIntent.get(charge.intentId)).filter((purchase): purchase is PurchaseRow => purchase !== undefined && purchase.kind !== 'consumable'),
    (purchase) => (purchase.kind === 'unique' ? purchase.item_id : `${purchase.player_id}/${purchase.item_id}`),
  );
  for (const [scope, count] of chargedScopes) {
    if (count > 1) {
      problems.push(`${scope} was charged ${count} times; expected at most once`);
    }
  }

  // No grant without a charge.
  for (const purchase of purchases) {
    if (purchase.state === 'granted' && !chargesByIntent.has(purchase.intent_id)) {
      problems.push(`purchase ${purchase.id} is granted but its intent ${purchase.intent_id} was never charged`);
    }
  }
  for (const [purchaseId] of grantsByPurchase) {
    const purchase = purchases.find((candidate) => candidate.id === purchaseId);
    if (purchase === undefined || !chargesByIntent.has(purchase.intent_id)) {
      problems.push(`inventory holds a grant of purchase ${purchaseId} without a charge`);
    }
  }

  // Intents the sequencer holds without a stored purchase (a crash between SendMessage and the insert) must never be charged.
  for (const intent of intents) {
    if (!byIntent.has(intent.intentId) && intent.status === 'paid') {
      problems.push(`intent ${intent.intentId} has no stored purchase and was paid`);
    }
  }

  return problems;
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) {
    const name = key(item);
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}
