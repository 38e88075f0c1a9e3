// The sandbox Code sequencer, `phaser-code-pay/sandbox`: a local stand-in for
// Code's sequencer that the unmodified `@code-wallet/client` and
// `@code-wallet/elements` run against. See docs/SANDBOX.md.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import type { SandboxContext } from './context.js';
import { createControlRouter } from './control.js';
import { FaultInjector } from './faults.js';
import { createSandboxPagesRouter } from './pages.js';
import { createRpcHandler, RpcStats } from './rpc.js';
import { SandboxSequencer } from './sequencer.js';
import { WebhookSigner } from './signing-key.js';
import { attachMessageStream } from './stream.js';
import { SandboxStore } from './store.js';
import { WebhookDispatcher } from './webhooks.js';

export { SandboxWalletError } from './context.js';
export type { SandboxContext, SandboxIntent, SandboxIntentEvent, SandboxIntentStatus } from './context.js';
export type { ActiveFaults, FaultsRequest } from './faults.js';
export type { LedgerEntry, WebhookRecord } from './store.js';
export { IN_MEMORY_DATA_FILE } from './store.js';
export { buildWebhookClaims, WEBHOOK_MAX_ATTEMPTS, WEBHOOK_RETRY_DELAYS_MS, type WebhookClaims } from './webhooks.js';

export const DEFAULT_SANDBOX_HOST = '127.0.0.1';
export const DEFAULT_SANDBOX_PORT = 8081;
export const DEFAULT_SANDBOX_DATA_FILE = '.sandbox/sandbox.db';

export interface SandboxOptions {
  /** Interface to listen on; 127.0.0.1 by default. */
  host?: string;
  /** TCP port; 8081 by default, 0 for any free port. */
  port?: number;
  /** SQLite data file, created if missing; `.sandbox/sandbox.db` by default, `:memory:` for no file. */
  dataFile?: string;
  /** Multiplies the webhook retry delays; 1 by default, for example 0.001 in tests. */
  timeScale?: number;
  /** Pino logger; a default `info` logger when omitted. */
  logger?: Logger;
}

const optionsSchema = z.object({
  host: z.string().min(1),
  port: z.number().int().min(0).max(65_535),
  dataFile: z.string().min(1),
  timeScale: z.number().positive().max(1_000),
});

export interface SandboxStats {
  /** Calls by `Service.Method`, for example `MicroPayment.GetStatus`, including rejected and faulted calls. */
  rpc: Record<string, number>;
  /** Webhook HTTP POSTs sent, duplicates included. */
  webhookDeliveries: number;
}

export interface SandboxHandle {
  /** Base URL, `http://HOST:PORT`. */
  url: string;
  /** The `endpoint` option for `@code-wallet/client`, `${url}/v1`. */
  endpoint: string;
  /** The simulated wallet page. */
  walletUrl: string;
  /** Base58 Ed25519 public key that signs the sandbox's webhooks. */
  publicKey: string;
  /** The same key as a JWK, for `jose.importJWK(publicJwk, 'EdDSA')`. */
  publicJwk: { kty: 'OKP'; crv: 'Ed25519'; x: string };
  dataFile: string;
  context: SandboxContext;
  /** Counts RPC calls by method and webhook deliveries since start (or the last reset). */
  stats(): SandboxStats;
  resetStats(): void;
  /** Stops the server and the webhook queue; pending deliveries stay in the data file. */
  close(): Promise<void>;
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Opens the data file and starts the sandbox's HTTP server. */
export async function startSandbox(options: SandboxOptions = {}): Promise<SandboxHandle> {
  const parsed = optionsSchema.safeParse({
    host: options.host ?? DEFAULT_SANDBOX_HOST,
    port: options.port ?? DEFAULT_SANDBOX_PORT,
    dataFile: options.dataFile ?? DEFAULT_SANDBOX_DATA_FILE,
    timeScale: options.timeScale ?? 1,
  });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
    throw new ConfigError(`Invalid sandbox options: ${problems}`);
  }
  const { host, port, dataFile, timeScale } = parsed.data;
  const logger = (options.logger ?? pino({ name: 'sandbox' })).child({ component: 'sandbox' });

  const store = new SandboxStore(dataFile);
  const signer = WebhookSigner.load(store);
  const faults = new FaultInjector();
  const stats = new RpcStats();
  const webhooks = new WebhookDispatcher({
    store,
    signer,
    faults,
    logger,
    timeScale,
    onDeliverySent: () => stats.countWebhookDelivery(),
  });
  const sequencer = new SandboxSequencer({ store, webhooks, logger });

  let baseUrl = `http://${formatHost(host)}:${port}`;
  const app = express();
  app.disable('x-powered-by');
  const rpcHandler = createRpcHandler({ sequencer, faults, stats, logger });
  app.post(['/v1/api', '/v1/api/'], (request, response) => {
    rpcHandler(request, response).catch((error: unknown) => {
      logger.error({ err: error }, 'RPC request failed');
      if (!response.headersSent) {
        response.status(500).end();
      }
    });
  });
  app.use('/control', createControlRouter({ sequencer, store, signer, faults, stats, logger }));
  app.use(createSandboxPagesRouter(sequencer, { baseUrl: () => baseUrl, logger: logger.child({ part: 'pages' }) }));
  app.use((request, response) => {
    response.status(404).json({
      error: { code: 'not_found', message: `No sandbox endpoint ${request.method} ${request.path}; see docs/SANDBOX.md.` },
    });
  });

  const server = createServer(app);
  const closeStream = attachMessageStream(server, sequencer, { path: '/v1/ws', logger: logger.child({ part: 'stream' }) });

  let address: AddressInfo;
  try {
    address = await listen(server, port, host);
  } catch (error) {
    await closeStream();
    store.close();
    throw new ConfigError(`Sandbox could not listen on ${host}:${port}: ${(error as Error).message}. Choose another port with --port.`);
  }
  baseUrl = `http://${formatHost(host)}:${address.port}`;
  webhooks.wake();
  logger.info({ url: baseUrl, dataFile, timeScale, intents: store.countIntents() }, 'sandbox started');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await closeStream();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await webhooks.close();
      store.close();
      logger.info({ url: baseUrl }, 'sandbox stopped');
    })();
    return closing;
  };

  return {
    url: baseUrl,
    endpoint: `${baseUrl}/v1`,
    walletUrl: `${baseUrl}/wallet`,
    publicKey: signer.publicKey,
    publicJwk: signer.publicJwk,
    dataFile,
    context: sequencer,
    stats: () => stats.snapshot(),
    resetStats: () => stats.reset(),
    close,
  };
}
