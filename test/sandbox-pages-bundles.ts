// Builds the sandbox page bundles for the browser tests when the sources are
// newer than dist/sandbox-web/. Test files run in parallel processes and a
// vite build empties its output folder first, so a lock folder makes the
// files build one at a time and the later ones find the bundles fresh.

import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { build } from 'vite';

const BUNDLE_FILE = 'dist/sandbox-web/elements.js';
const LOCK_DIR = 'dist/.sandbox-web-build.lock';
/** A lock older than this is left over from a crashed run. */
const STALE_LOCK_MS = 120_000;
/** Sources that end up in the bundles. */
const SOURCES = ['server/sandbox/web', 'server/sandbox/stream-messages.ts', 'server/sandbox/context.ts'];

/** Builds dist/sandbox-web/ unless it is newer than every source that goes into it. */
export async function ensureSandboxBundles(): Promise<void> {
  mkdirSync('dist', { recursive: true });

  while (!tryLock()) {
    await sleep(200);
  }

  try {
    if (bundlesAreStale()) {
      await build({ configFile: 'server/sandbox/web/vite.config.ts', logLevel: 'error' });
    }
  } finally {
    rmSync(LOCK_DIR, { recursive: true, force: true });
  }
}

function tryLock(): boolean {
  try {
    mkdirSync(LOCK_DIR);
    return true;
  } catch {
    const lock = statSync(LOCK_DIR, { throwIfNoEntry: false });
    if (lock && Date.now() - lock.mtimeMs > STALE_LOCK_MS) {
      rmSync(LOCK_DIR, { recursive: true, force: true });
    }
    return false;
  }
}

function bundlesAreStale(): boolean {
  if (!existsSync(BUNDLE_FILE)) {
    return true;
  }
  return newestSourceMtime() > statSync(BUNDLE_FILE).mtimeMs;
}

function newestSourceMtime(): number {
  let newest = 0;
  const visit = (path: string): void => {
    const stats = statSync(path);
    if (stats.isDirectory()) {
      for (const entry of readdirSync(path)) {
        visit(join(path, entry));
      }
      return;
    }
    newest = Math.max(newest, stats.mtimeMs);
  };
  for (const source of SOURCES) {
    visit(source);
  }
  return newest;
}
