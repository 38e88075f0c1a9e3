// `npm start`: builds the game client if needed, starts the sample game
// server (with the sandbox sequencer unless an external one is configured),
// prints where to play and pay, and shuts down cleanly on SIGINT or SIGTERM.

import { pino, type Logger } from 'pino';

import { startSampleServer, type SampleServer } from './app.js';
import { ensureGameBuilt } from './build.js';
import { EnvironmentError, readConfig, type SampleGameConfig } from './env.js';

/** How often the server checks that the process that started it is still there. */
const ORPHAN_CHECK_INTERVAL_MS = 500;

/** How long a shutdown may take before the process exits anyway. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

async function main(): Promise<void> {
  let config: SampleGameConfig;
  try {
    config = readConfig(process.env);
  } catch (error) {
    if (error instanceof EnvironmentError) {
      process.stderr.write(`Invalid configuration: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }

  const logger = pino({
    name: 'sample-game',
    level: config.logLevel,
    redact: { paths: ['token', '*.token', 'keySecret', '*.keySecret', 'clientSecret', '*.clientSecret', 'req.headers.authorization'], censor: '[redacted]' },
  });

  let stopping = false;
  const started = startAll(config, logger, () => stopping);

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal during shutdown; exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');

    const timer = setTimeout(() => {
      logger.error({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'shutdown timed out; exiting');
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS);
    timer.unref();

    // A signal during start-up waits for the parts being started, then closes them.
    started
      .catch(() => undefined)
      .then((server) => server?.close())
      .then(
        () => {
          logger.info('stopped');
          process.exit(0);
        },
        (error: unknown) => {
          logger.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  stopWhenOrphaned(() => stop('SIGTERM'));

  const server = await started;
  if (server !== undefined && !stopping) {
    printBanner(server);
  }
}

/** Builds the client if needed, then starts the server unless a signal arrived during the build. */
/**
 * Calls `stop` once this process loses its parent. `npm start` runs the server
 * under `sh -c`, and on SIGTERM npm and the shell exit without passing the
 * signal on (npm 11), which would leave the server running with its ports.
 */
function stopWhenOrphaned(stop: () => void): void {
  const parentPid = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parentPid) {
      clearInterval(timer);
      stop();
    }
  }, ORPHAN_CHECK_INTERVAL_MS);
  timer.unref();
}

async function startAll(config: SampleGameConfig, logger: Logger, isStopping: () => boolean): Promise<SampleServer | undefined> {
  await ensureGameBuilt(config.build, logger);
  if (isStopping()) {
    return undefined;
  }
  return startSampleServer(config, logger);
}

function printBanner(server: SampleServer): void {
  const lines = ['', `  Sample game:     ${server.url}`];
  if (server.walletUrl !== undefined) {
    lines.push(`  Sandbox wallet:  ${server.walletUrl}`);
  }
  lines.push(`  Webhook URL:     ${server.webhookUrl}`, '  Press Ctrl-C to stop.', '');
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch((error: unknown) => {
  reportStartupFailure(error);
  process.exit(1);
});

function reportStartupFailure(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`The sample game server failed to start: ${message}\n`);
  if (error instanceof Error && error.stack !== undefined && process.env.LOG_LEVEL === 'debug') {
    process.stderr.write(`${error.stack}\n`);
  }
}
