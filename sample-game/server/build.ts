// Builds the game client with Vite when its sources changed since the last
// build. The fingerprint covers the path, size and modification time of every
// input file, so an edit, a new file or a deleted file triggers a rebuild.

import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Logger } from 'pino';

import type { BuildMode } from './env.js';

export const SAMPLE_GAME_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const REPOSITORY_ROOT = path.resolve(SAMPLE_GAME_ROOT, '..');
export const GAME_DIST = path.join(SAMPLE_GAME_ROOT, 'dist');

const FINGERPRINT_FILE = path.join(GAME_DIST, '.build-fingerprint');

/** Files and folders, relative to the repository root, that end up in the game bundle. */
const BUILD_INPUTS = [
  'sample-game/index.html',
  'sample-game/vite.config.ts',
  'sample-game/src',
  'sample-game/shared',
  'plugin',
  'protocol',
  'package-lock.json',
];

export type BuildResult = 'built' | 'up_to_date' | 'skipped';

/** Runs the Vite build unless `mode` is `skip`, or `auto` and the inputs are unchanged. */
export async function ensureGameBuilt(mode: BuildMode, logger: Logger): Promise<BuildResult> {
  if (mode === 'skip') {
    logger.info({ dist: GAME_DIST }, 'game build skipped (SAMPLE_GAME_BUILD=skip)');
    return 'skipped';
  }

  const fingerprint = await computeFingerprint();
  if (mode === 'auto' && (await readStoredFingerprint()) === fingerprint) {
    logger.info({ dist: GAME_DIST }, 'game build is up to date');
    return 'up_to_date';
  }

  logger.info({ dist: GAME_DIST }, 'building the game client with Vite');
  const { build } = await import('vite');
  await build({
    configFile: path.join(SAMPLE_GAME_ROOT, 'vite.config.ts'),
    logLevel: 'warn',
  });

  await fs.writeFile(FINGERPRINT_FILE, `${fingerprint}\n`);
  logger.info({ dist: GAME_DIST }, 'game client built');
  return 'built';
}

export async function computeFingerprint(): Promise<string> {
  const hash = createHash('sha256');

  for (const input of BUILD_INPUTS) {
    const files = await listFiles(path.join(REPOSITORY_ROOT, input));
    for (const file of files) {
      const stats = await fs.stat(file);
      hash.update(`${path.relative(REPOSITORY_ROOT, file)}\0${stats.size}\0${stats.mtimeMs}\n`);
    }
  }

  return hash.digest('hex');
}

async function readStoredFingerprint(): Promise<string | undefined> {
  try {
    return (await fs.readFile(FINGERPRINT_FILE, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** Lists the files under `target` in a stable order; a missing path lists nothing. */
async function listFiles(target: string): Promise<string[]> {
  let stats;
  try {
    stats = await fs.stat(target);
  } catch {
    return [];
  }
  if (!stats.isDirectory()) {
    return [target];
  }

  const entries = await fs.readdir(target, { withFileTypes: true });
  entries.sort((a, b) => a.name.localeCompare(b.name));

  const files: string[] = [];
  for (const entry of entries) {
    if (entry.name === 'node_modules' || entry.name === 'dist') {
      continue;
    }
    files.push(...(await listFiles(path.join(target, entry.name))));
  }
  return files;
}
