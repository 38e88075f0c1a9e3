import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { pino, type Logger } from 'pino';
import type { SandboxContext } from './context.js';
import { createWalletRoutes } from './wallet-routes.js';

export interface SandboxPagesOptions {
  /** Public base URL of the sandbox, for example `http://127.0.0.1:8081`. */
  baseUrl: () => string;
  logger?: Logger;
  /** Folder of the built browser bundles; when omitted, `dist/sandbox-web/` of this package. */
  bundleDir?: string;
}

/** The elements iframe pages the sandbox serves, as named in `@code-wallet/elements` 2.0.4. */
export const ELEMENTS_PAGES = [
  'payment-request-button',
  'payment-request-modal-desktop',
  'payment-request-modal-mobile',
  'payment-request-page-desktop',
  'payment-request-page-mobile',
] as const;

const moduleDir = dirname(fileURLToPath(import.meta.url));

/**
 * Folders where `npm run build` puts the bundles, seen from this module when
 * it runs from the sources (`server/sandbox/`) or from `dist/server/sandbox/`.
 */
const BUNDLE_DIR_CANDIDATES = [resolve(moduleDir, '../../dist/sandbox-web'), resolve(moduleDir, '../../sandbox-web')];

/**
 * Serves the wallet page at `/wallet` and the pages behind the
 * `@code-wallet/elements` iframe URLs under `/sdk/v1/elements/`.
 *
 * Each page's API and bundles are served twice, at the root and under
 * `/sdk/`, so that relative URLs work both on the sandbox itself and when a
 * browser test maps `https://sdk.getcode.com/*` onto the sandbox's `/sdk/*`.
 */
export function createSandboxPagesRouter(context: SandboxContext, options: SandboxPagesOptions): Router {
  const logger = (options.logger ?? pino({ name: 'sandbox-pages' })).child({ component: 'sandbox-pages' });
  const bundleDirs = options.bundleDir ? [options.bundleDir] : BUNDLE_DIR_CANDIDATES;
  const findBundleDir = (): string | undefined => bundleDirs.find((dir) => existsSync(join(dir, 'elements.js')));

  // Every page and asset request fails the same way until the bundles are built, so log it once.
  let missingBundlesLogged = false;
  const sendNotBuilt = (response: Response): void => {
    if (!missingBundlesLogged) {
      missingBundlesLogged = true;
      logger.error({ bundleDirs }, 'sandbox page bundles not found; run `npm run build` to build dist/sandbox-web/');
    }
    sendNotBuiltPage(response);
  };

  const router = Router();
  const walletRoutes = createWalletRoutes(context, logger);
  router.use('/wallet/api', walletRoutes);
  router.use('/sdk/wallet/api', walletRoutes);

  const serveBundles: express.RequestHandler = (request, response, next) => {
    const bundleDir = findBundleDir();
    if (!bundleDir) {
      sendNotBuilt(response);
      return;
    }
    express.static(bundleDir, { index: false, fallthrough: false })(request, response, next);
  };
  router.use('/sandbox-web', serveBundles);
  router.use('/sdk/sandbox-web', serveBundles);

  // Code's elements pages call the sequencer on their own origin; forward those calls to the unary endpoint.
  router.post(['/sdk/v1/api', '/sdk/v1/api/'], express.raw({ type: () => true, limit: MAX_UNARY_BODY_BYTES }), (request, response) => {
    void forwardUnary(options.baseUrl(), request.body as Buffer, response, logger);
  });

  router.get('/wallet', (_request, response) => {
    if (!findBundleDir()) {
      sendNotBuilt(response);
      return;
    }
    sendHtml(response, walletHtml(options.baseUrl()));
  });

  // Express matches this route with and without the trailing slash.
  router.get('/sdk/v1/elements/:page', (request, response) => {
    if (!request.path.endsWith('/')) {
      // The elements package requests the folder URL, and the page's relative bundle URL needs it.
      response.redirect(301, `${request.baseUrl}/sdk/v1/elements/${encodeURIComponent(request.params.page)}/`);
      return;
    }

    const page = request.params.page;
    if (!(ELEMENTS_PAGES as readonly string[]).includes(page)) {
      logger.warn({ page }, 'elements page not found');
      response
        .status(404)
        .type('text/plain')
        .send(`The sandbox has no elements page "${page}". It serves ${ELEMENTS_PAGES.join(', ')}.`);
      return;
    }

    if (!findBundleDir()) {
      sendNotBuilt(response);
      return;
    }
    sendHtml(response, elementsHtml(page, options.baseUrl()));
  });

  router.use((error: unknown, request: Request, response: Response, next: NextFunction) => {
    const bodyError = error as { type?: string; status?: number; message?: string };
    if (bodyError.type === 'entity.too.large' || bodyError.type === 'request.aborted') {
      logger.warn({ path: request.path, type: bodyError.type }, 'elements page RPC body rejected');
      response
        .status(bodyError.status ?? 400)
        .type('text/plain')
        .send(`Invalid RPC body: ${bodyError.message ?? bodyError.type}; the limit is ${MAX_UNARY_BODY_BYTES} bytes.`);
      return;
    }
    next(error);
  });

  return router;
}

/** Largest unary request body forwarded from the elements pages, in bytes. */
const MAX_UNARY_BODY_BYTES = 64 * 1024;

async function forwardUnary(baseUrl: string, body: Buffer, response: Response, logger: Logger): Promise<void> {
  try {
    const answer = await fetch(`${baseUrl}/v1/api/`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array(Buffer.isBuffer(body) ? body : Buffer.alloc(0)),
    });
    const bytes = Buffer.from(await answer.arrayBuffer());
    response.status(answer.status).type(answer.headers.get('content-type') ?? 'application/octet-stream').send(bytes);
  } catch (error) {
    logger.error({ err: error }, 'forwarding a unary RPC from an elements page failed');
    response.status(502).type('text/plain').send('The sandbox could not forward the RPC to its unary endpoint; see its log.');
  }
}

function sendHtml(response: Response, html: string): void {
  response.status(200).type('html').set('cache-control', 'no-store').send(html);
}

function sendNotBuiltPage(response: Response): void {
  response
    .status(503)
    .type('html')
    .send(
      '<!doctype html><meta charset="utf-8"><title>Sandbox pages not built</title>' +
        '<h1>Sandbox pages not built</h1>' +
        '<p>The wallet and elements pages need their browser bundles in <code>dist/sandbox-web/</code>. ' +
        'Run <code>npm run build</code> in the phaser-code-pay package, then reload.</p>',
    );
}

function walletHtml(baseUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox wallet</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #0f0c1f; }
  table { border-collapse: collapse; width: 100%; margin-top: 16px; }
  th, td { border-bottom: 1px solid #ddd; padding: 6px 8px; text-align: left; vertical-align: middle; }
  td.intent-id code, td.destination code { font-size: 11px; word-break: break-all; }
  td.code { width: 104px; color: #0f0c1f; font-size: 11px; }
  #status.error { color: #b00020; }
  button { margin-right: 4px; }
</style>
</head>
<body>
<h1>Sandbox wallet</h1>
<p>Simulates a Code wallet for the sandbox at <code>${escapeHtml(baseUrl)}</code>. Scanning, paying or declining here
acts as a player would in the Code app. The sandbox never receives client secrets, so a scan code is drawn only for an
intent whose client secret you enter below or pass as <code>/wallet#scan=CLIENT_SECRET</code>.</p>
<form id="scan-form">
  <label>Client secret <input id="client-secret" name="clientSecret" autocomplete="off" size="20"></label>
  <button type="submit">Show scan code</button>
</form>
<p id="status" role="status">Loading intents.</p>
<table>
  <thead><tr><th>Scan code</th><th>Intent id</th><th>Amount</th><th>Destination</th><th>Status</th><th>Created</th><th>Wallet</th></tr></thead>
  <tbody id="intents"></tbody>
</table>
<script type="module" src="/sandbox-web/wallet.js"></script>
</body>
</html>
`;
}

function elementsHtml(page: string, baseUrl: string): string {
  const isButton = page.endsWith('-button');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Code sandbox: ${escapeHtml(page)}</title>
<meta name="sandbox-url" content="${escapeHtml(baseUrl)}">
<style>
  html { background: ${isButton ? 'transparent' : '#0f0c1f'}; }
  body { margin: 0; color: white; font: 14px/1.4 system-ui, sans-serif; }
  .code-button { width: 222px; height: 60px; border: 0; border-radius: 6px; background: #0f0c1f; color: white;
    font-weight: 600; cursor: pointer; }
  .card { max-width: 420px; margin: 6vh auto; text-align: center; }
  .code { display: flex; justify-content: center; min-height: 200px; align-items: center; color: white; }
  .status.error, .error { color: #ff8a80; }
  .actions button { margin: 6px; padding: 10px 14px; border-radius: 6px; border: 1px solid #fff8; background: #fff;
    color: #0f0c1f; font-weight: 600; cursor: pointer; }
  .actions button:disabled { opacity: 0.5; cursor: default; }
  .intent { font-size: 11px; opacity: 0.7; word-break: break-all; }
</style>
</head>
<body>
<div id="app"></div>
<script type="module" src="../../../sandbox-web/elements.js"></script>
</body>
</html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
