// Validation of the createCodePay options and their defaults.
import { randomBytes } from 'node:crypto';

import bs58 from 'bs58';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';

import { CODE_SEQUENCER_ENDPOINT, validateConfig } from '../server/config.js';
import { ConfigError } from '../server/errors.js';
import { resolveKitOptions, type CodePayOptions } from '../server/kit-options.js';

const destination = bs58.encode(randomBytes(32));
const keySecret = randomBytes(32).toString('hex');
const sandboxKey = bs58.encode(randomBytes(32));

function baseOptions(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    gameId: 'space-shooter',
    catalog: [{ id: 'sword', kind: 'permanent', name: 'Sword', amount: 0.25, currency: 'usd' }],
    destination,
    keySecret,
    store: { sqlite: './code-pay.db' },
    authenticate: () => 'player-1',
    grant: async () => undefined,
    ...overrides,
  };
}

/** Validates with an empty environment, so CODE_PAY_KEY_SECRET on the test machine cannot leak in. */
function configError(options: unknown, env: NodeJS.ProcessEnv = {}): ConfigError {
  let caught: unknown;
  try {
    validateConfig(options, env);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  return caught as ConfigError;
}

describe('validateConfig', () => {
  it('applies production defaults', () => {
    const config = validateConfig(baseOptions(), {});

    expect(config.sandbox).toBe(false);
    expect(config.sequencer.endpoint).toBe('https://cash.getcode.com/v1');
    expect(config.sequencer.publicKey).toBe('codeHy87wGD5oMRLG75qKqsSi1vWE3oxNyYmXo5F9YR');
    expect(config.sequencer.timeoutMs).toBe(10_000);
    expect(config.keySecret).toHaveLength(32);
    expect(config.catalog[0]!.currency).toBe('usd');
    expect(config.polling).toEqual({ intervalMs: 1_000, concurrency: 8, batchSize: 100, leaseMs: 30_000 });
    expect(config.uniqueHoldMs).toBe(600_000);
    expect(config.rateLimit).toEqual({ burst: 20, perSecond: 5 });
    expect(config.webhookBodyLimit).toBe(16 * 1024);
    expect(config.schedule.firstCheckAfterMs).toBe(2_000);
  });

  it('derives sandbox from a loopback endpoint', () => {
    for (const host of ['127.0.0.1:8081', 'localhost:8081', '[::1]:8081']) {
      const config = validateConfig(baseOptions({ sequencer: { endpoint: `http://${host}/v1/` } }), {});

      expect(config.sandbox, host).toBe(true);
      expect(config.sequencer.endpoint, host).toBe(`http://${host}/v1`);
    }
  });

  it('explicit sandbox overrides the endpoint', () => {
    const config = validateConfig(baseOptions({ sandbox: false, sequencer: { endpoint: 'http://127.0.0.1:8081/v1' } }), {});

    expect(config.sandbox).toBe(false);
  });

  it('production without key secret is an error', () => {
    const error = configError(baseOptions({ keySecret: undefined }));

    expect(error.message).toContain('Missing option `keySecret`');
    expect(error.message).toContain('CODE_PAY_KEY_SECRET');
    expect(error.message).toContain('randomBytes(32)');
  });

  it('reads the key secret from the environment', () => {
    const config = validateConfig(baseOptions({ keySecret: undefined }), { CODE_PAY_KEY_SECRET: keySecret });

    expect(Buffer.from(config.keySecret!).toString('hex')).toBe(keySecret);
  });

  it('sandbox without key secret is accepted', () => {
    const config = validateConfig(baseOptions({ keySecret: undefined, sequencer: { endpoint: 'http://127.0.0.1:8081/v1' } }), {});

    expect(config.keySecret).toBeUndefined();
  });

  it('rejects a weak key secret in production', () => {
    const short = configError(baseOptions({ keySecret: 'abcd' }));
    const repeated = configError(baseOptions({ keySecret: '00'.repeat(32) }));

    expect(short.message).toContain('keySecret');
    expect(short.message).not.toContain('abcd');
    expect(repeated.message).toContain('keySecret');
  });

  it('rejects sandbox against production', () => {
    const error = configError(baseOptions({ sandbox: true }));

    expect(error.message).toContain('Invalid option `sandbox`');
    expect(error.message).toContain(CODE_SEQUENCER_ENDPOINT);
  });

  it('sandbox webhooks need the sandbox key', () => {
    const sandboxEndpoint = { endpoint: 'http://127.0.0.1:8081/v1' };
    const error = configError(baseOptions({ sequencer: sandboxEndpoint, webhookUrl: 'http://127.0.0.1:3000/code-pay/webhook' }));

    expect(error.message).toContain('Missing option `sequencer.publicKey`');
    const config = validateConfig(
      baseOptions({ sequencer: { ...sandboxEndpoint, publicKey: sandboxKey }, webhookUrl: 'http://127.0.0.1:3000/code-pay/webhook' }),
      {},
    );
    expect(config.sequencer.publicKey).toBe(sandboxKey);
  });

  it('names missing required options', () => {
    for (const option of ['gameId', 'store', 'authenticate', 'grant']) {
      const error = configError(baseOptions({ [option]: undefined }));

      expect(error.message, option).toContain(`Missing option \`${option}\``);
    }
  });

  it('rejects invalid option values', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ gameId: 'my game' }, 'Invalid option `gameId`'],
      [{ store: { mysql: 'x' } }, 'Invalid option `store`'],
      [{ sequencer: { endpoint: 'ftp://example.test' } }, 'Invalid option `sequencer.endpoint`'],
      [{ sequencer: { publicKey: 'abc' } }, 'Invalid option `sequencer.publicKey`'],
      [{ sequencer: { timeoutMs: 0 } }, 'Invalid option `sequencer.timeoutMs`'],
      [{ webhookUrl: 'not a url' }, 'Invalid option `webhookUrl`'],
      [{ authenticate: 'player-1' }, 'Invalid option `authenticate`'],
      [{ logger: console }, 'Invalid option `logger`'],
      [{ polling: { intervalMs: -5 } }, 'Invalid option `polling.intervalMs`'],
      [{ polling: { leaseMs: 5_000 } }, 'Invalid option `polling.leaseMs`'],
      [{ store: { postgres: 'mysql://127.0.0.1/game' } }, 'Invalid option `store.postgres`'],
      [{ redis: { url: 'http://127.0.0.1:6379' } }, 'Invalid option `redis.url`'],
      [{ rateLimit: { burst: 0 } }, 'Invalid option `rateLimit.burst`'],
      [{ uniqueHoldMs: 1.5 }, 'Invalid option `uniqueHoldMs`'],
      [{ webhookBodyLimit: 10 }, 'Invalid option `webhookBodyLimit`'],
    ];
    for (const [override, expected] of cases) {
      const error = configError(baseOptions(override));

      expect(error.message, JSON.stringify(override)).toContain(expected);
    }
  });

  it('rejects unknown options', () => {
    const error = configError(baseOptions({ webhookURL: 'https://game.example/code-pay/webhook' }));

    expect(error.message).toContain('Unknown option `webhookURL`');
  });

  it('rejects a backoff ceiling below its start', () => {
    const error = configError(baseOptions({ polling: { firstCheckAfterMs: 5_000, maxCheckIntervalMs: 1_000 } }));

    expect(error.message).toContain('polling.maxCheckIntervalMs');
  });

  it('reports catalog, destination and secret together', () => {
    const error = configError(baseOptions({ catalog: [{ id: 'sword', kind: 'permanent', name: 'Sword', amount: 5, currency: 'usd' }], destination: 'nope', keySecret: undefined }));

    expect(error.message).toContain('3 problems');
    expect(error.message).toContain('item "sword" has amount 5 usd');
    expect(error.message).toContain('`destination`');
    expect(error.message).toContain('`keySecret`');
  });

  it('accepts overrides', () => {
    const logger = pino({ level: 'silent' });
    const config = validateConfig(
      baseOptions({
        logger,
        polling: { intervalMs: 50, concurrency: 2, batchSize: 10, leaseMs: 20_000, firstCheckAfterMs: 100, expireAfterMs: 60_000 },
        rateLimit: { burst: 3 },
        uniqueHoldMs: 1_000,
        webhookUrl: 'https://game.example/code-pay/webhook',
        metrics: { prefix: 'shooter_' },
      }),
      {},
    );

    expect(config.polling).toEqual({ intervalMs: 50, concurrency: 2, batchSize: 10, leaseMs: 20_000 });
    expect(config.schedule.firstCheckAfterMs).toBe(100);
    expect(config.schedule.expireAfterMs).toBe(60_000);
    expect(config.schedule.maxCheckIntervalMs).toBe(60_000);
    expect(config.rateLimit).toEqual({ burst: 3, perSecond: 5 });
    expect(config.uniqueHoldMs).toBe(1_000);
    expect(config.webhookUrl).toBe('https://game.example/code-pay/webhook');
    expect(config.metrics.prefix).toBe('shooter_');
  });
});

describe('resolveKitOptions', () => {
  it('requires a key secret with PostgreSQL in the sandbox', () => {
    const options = baseOptions({
      keySecret: undefined,
      store: { postgres: 'postgres://game@127.0.0.1/game' },
      sequencer: { endpoint: 'http://127.0.0.1:8081/v1', publicKey: sandboxKey },
    });

    let caught: unknown;
    try {
      resolveKitOptions(options as unknown as CodePayOptions, {});
    } catch (error) {
      caught = error;
    }

    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).message).toContain('every instance needs the same secret');
  });

  it('accepts PostgreSQL with a key secret', () => {
    const options = baseOptions({ store: { postgres: 'postgres://game@127.0.0.1/game', maxConnections: 4 } });

    const settings = resolveKitOptions(options as unknown as CodePayOptions, {});

    expect(settings.store).toEqual({ postgres: 'postgres://game@127.0.0.1/game', maxConnections: 4 });
    expect(settings.keySecret).toHaveLength(32);
  });
});
