// Builds the plugin's browser test page with Vite for one Phaser version and
// serves it, with the fake kit's socket.io server, from one loopback HTTP
// server, so the page and the socket share an origin.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server as HttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';
import { FakeKit, type FakeKitOptions } from './plugin-fake-kit.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Whether the browser suites run: they skip without Chromium, except in CI, where they must run. */
export function browserAvailability(): { run: boolean; reason?: string } {
  if (existsSync(CHROMIUM_PATH)) return { run: true };
  if (process.env.CI === 'true') {
    throw new Error(`${CHROMIUM_PATH} is missing and CI=true: install Debian's chromium package to run the browser tests.`);
  }
  return { run: false, reason: `${CHROMIUM_PATH} not found: skipping the plugin's browser tests (install chromium to run them).` };
}

const PAGE_ROOT = fileURLToPath(new URL('./plugin-browser/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
};

/** Which package the page's `phaser` import resolves to. */
export type PhaserPackage = 'phaser' | 'phaser3';

/** Builds the test page into a temporary directory and returns its path. */
export async function buildTestPage(phaserPackage: PhaserPackage): Promise<string> {
  const outDir = await mkdtemp(join(tmpdir(), `code-pay-plugin-${phaserPackage}-`));
  await build({
    root: PAGE_ROOT,
    configFile: false,
    logLevel: 'error',
    resolve: {
      alias: phaserPackage === 'phaser3' ? [{ find: /^phaser$/, replacement: 'phaser3' }] : [],
    },
    build: { outDir, emptyOutDir: true, minify: false, chunkSizeWarningLimit: 10_000 },
  });
  return outDir;
}

export interface TestSite {
  url: string;
  kit: FakeKit;
  close(): Promise<void>;
}

/** Serves the built page from `pageDir` and the fake kit on one loopback port. */
export async function startTestSite(pageDir: string, kitOptions: Omit<FakeKitOptions, 'httpServer'> = {}): Promise<TestSite> {
  const http: HttpServer = createServer((request, response) => {
    void serveFile(pageDir, request.url ?? '/', response);
  });
  const kit = new FakeKit({ ...kitOptions, httpServer: http });
  await new Promise<void>((resolveListen) => http.listen(0, '127.0.0.1', resolveListen));
  const url = await kit.listen();

  return {
    url,
    kit,
    async close() {
      await kit.close();
      http.closeAllConnections();
      await new Promise<void>((resolveClose) => http.close(() => resolveClose()));
    },
  };
}

async function serveFile(root: string, requestUrl: string, response: import('node:http').ServerResponse): Promise<void> {
  const pathname = decodeURIComponent(new URL(requestUrl, 'http://127.0.0.1').pathname);
  const relative = normalize(pathname === '/' ? '/index.html' : pathname);
  const file = resolve(root, `.${relative}`);
  if (!file.startsWith(resolve(root))) {
    response.writeHead(403).end();
    return;
  }

  try {
    const body = await readFile(file);
    response.writeHead(200, { 'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream' });
    response.end(body);
  } catch {
    response.writeHead(404).end('not found');
  }
}

export async function removeDirectory(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}
