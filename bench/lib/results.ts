// Writes one benchmark's results to bench/results/<name>.json.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_FOLDER = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

export function writeResults(name: string, results: Record<string, unknown>): string {
  const path = join(RESULTS_FOLDER, `${name}.json`);
  mkdirSync(RESULTS_FOLDER, { recursive: true });
  writeFileSync(path, JSON.stringify({ benchmark: name, ...results }, null, 2) + '\n');
  return path;
}
