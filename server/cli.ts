// The `phaser-code-pay` command. `bin/phaser-code-pay.js` runs the compiled
// copy from dist/; `server/cli-entry.ts` runs this file from source.
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError } from './errors.js';
import {
  DEFAULT_SANDBOX_DATA_FILE,
  DEFAULT_SANDBOX_HOST,
  DEFAULT_SANDBOX_PORT,
  startSandbox,
} from './sandbox/index.js';

const USAGE = `Usage: phaser-code-pay <command> [options]

Commands:
  sandbox    Run the sandbox Code sequencer, a local stand-in for Code's
             service with a simulated wallet (see docs/SANDBOX.md).

Options for sandbox:
  --port PORT        TCP port to listen on (default ${DEFAULT_SANDBOX_PORT}; 0 picks a free port)
  --host HOST        Interface to listen on (default ${DEFAULT_SANDBOX_HOST})
  --data FILE        SQLite data file that keeps intents, the ledger, the webhook
                     queue and the signing key (default ${DEFAULT_SANDBOX_DATA_FILE})
  --time-scale N     Multiplies webhook retry delays, for example 0.001 (default 1)
  --log-level LEVEL  Pino log level: fatal, error, warn, info, debug, trace or silent (default info)
  -h, --help         Show this help
`;

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

function parseNumber(value: string | undefined, option: string): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed)) {
    throw new ConfigError(`Invalid ${option} "${value}": expected a number. Run phaser-code-pay --help.`);
  }
  return parsed;
}

/** Runs the sandbox until SIGINT or SIGTERM, then closes it and returns. */
async function runSandbox(args: string[]): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        data: { type: 'string' },
        'time-scale': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}. Run phaser-code-pay --help.`);
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return;
  }

  const logLevel = values['log-level'] ?? 'info';
  if (!LOG_LEVELS.has(logLevel)) {
    throw new ConfigError(`Invalid --log-level "${logLevel}": expected one of ${[...LOG_LEVELS].join(', ')}.`);
  }
  // Logs go to stderr so that stdout carries only the start-up summary.
  const logger = pino({ name: 'phaser-code-pay', level: logLevel }, pino.destination(2));

  const sandbox = await startSandbox({
    port: parseNumber(values.port, '--port'),
    host: values.host,
    dataFile: values.data,
    timeScale: parseNumber(values['time-scale'], '--time-scale'),
    logger,
  });

  process.stdout.write(
    [
      'Sandbox Code sequencer is running.',
      `  endpoint:     ${sandbox.endpoint}`,
      `  wallet page:  ${sandbox.walletUrl}`,
      `  public key:   ${sandbox.publicKey}`,
      `  data file:    ${sandbox.dataFile}`,
      'Press Ctrl+C to stop.',
      '',
    ].join('\n'),
  );

  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      logger.info({ signal }, 'stopping the sandbox');
      sandbox.close().then(resolve, (error: unknown) => {
        logger.error({ err: error }, 'sandbox did not close cleanly');
        resolve();
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  logger.flush();
}

/** Runs the command named by `argv` (the arguments after the program name). */
export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  if (command === undefined) {
    process.stderr.write(USAGE);
    throw new ConfigError('Missing command: run phaser-code-pay sandbox, or phaser-code-pay --help for the list of commands.');
  }
  if (command === 'sandbox') {
    await runSandbox(rest);
    return;
  }
  throw new ConfigError(`Unknown command "${command}". Run phaser-code-pay --help for the list of commands.`);
}
