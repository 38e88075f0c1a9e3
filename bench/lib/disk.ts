// Measures what one SQLite commit costs on the disk under the benchmarks'
// temporary folder, with the kit's settings (WAL, `synchronous = FULL`, the
// SQLite default the kit keeps) and with `synchronous = NORMAL` for
// comparison. The kit's SQLite store commits each write in its own
// transaction, so this bounds its write transactions per second.

import Database from 'better-sqlite3';

import { createBenchFolder } from './setup.js';
import { round } from './stats.js';

export interface CommitLatency {
  /** µs per single-row write transaction. */
  fullMicros: number;
  normalMicros: number;
  transactions: number;
}

export function measureCommitLatency(transactions = 1000): CommitLatency {
  const folder = createBenchFolder('commit');
  try {
    const micros: Record<string, number> = {};
    for (const synchronous of ['FULL', 'NORMAL']) {
      const database = new Database(`${folder.path}/commit-${synchronous}.db`);
      database.pragma('journal_mode = WAL');
      database.pragma(`synchronous = ${synchronous}`);
      database.exec('CREATE TABLE rows (id INTEGER PRIMARY KEY, value TEXT)');
      const insert = database.prepare('INSERT INTO rows (value) VALUES (?)');
      const startedAt = performance.now();
      for (let i = 0; i < transactions; i++) {
        database.exec('BEGIN IMMEDIATE');
        insert.run('x'.repeat(200));
        database.exec('COMMIT');
      }
      micros[synchronous] = ((performance.now() - startedAt) / transactions) * 1000;
      database.close();
    }
    return { fullMicros: round(micros.FULL, 0), normalMicros: round(micros.NORMAL, 0), transactions };
  } finally {
    folder.remove();
  }
}
