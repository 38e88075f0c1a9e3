// Child process: the sandbox sequencer on a loopback port, for the benchmarks.
// Config: { dataFile, timeScale? }. Requests: `stats`, `resetStats`, `rss`, `close`.

import { pino } from 'pino';

import { startSandbox } from '../../server/sandbox/index.js';
import { childConfig, serveParent } from '../lib/child.js';

interface SandboxChildConfig {
  dataFile: string;
  timeScale?: number;
}

const config = childConfig<SandboxChildConfig>();

try {
  const sandbox = await startSandbox({
    host: '127.0.0.1',
    port: 0,
    dataFile: config.dataFile,
    timeScale: config.timeScale ?? 1,
    logger: pino({ level: 'warn' }, pino.destination(2)),
  });

  serveParent({
    stats: () => ({ stats: sandbox.stats() }),
    resetStats: () => {
      sandbox.resetStats();
      return {};
    },
    rss: () => ({ rss: process.memoryUsage().rss }),
    cpu: () => ({ cpu: process.cpuUsage() }),
    close: async () => {
      await sandbox.close();
      setImmediate(() => process.exit(0));
      return {};
    },
  });

  process.send?.({ type: 'ready', url: sandbox.url, endpoint: sandbox.endpoint, publicKey: sandbox.publicKey });
} catch (error) {
  process.send?.({ type: 'failed', error: String((error as Error).stack ?? error) });
  process.exit(1);
}
