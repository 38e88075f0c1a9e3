// The sample game server's environment parsing and guest tokens, without a
// running server.

import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { SignJWT, UnsecuredJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';

import { DEFAULT_DATABASE_PATH, EnvironmentError, SANDBOX_DESTINATION, readConfig } from '../sample-game/server/env.js';
import { GuestTokenError, createGuestAuthority, loadTokenSecret } from '../sample-game/server/guest.js';
import { TOKEN_SECRET_FILE, prepareDataDirectory } from '../sample-game/server/secrets.js';

/** The secrets every instance on one PostgreSQL database must share. */
const SHARED_SECRETS = {
  CODE_PAY_KEY_SECRET: '11'.repeat(32),
  SAMPLE_GAME_TOKEN_SECRET: 'a-sample-token-secret-of-32-characters',
};

const CWD = '/srv/game';
const SECRET = new TextEncoder().encode('0123456789abcdef0123456789abcdef-test-secret');

function configError(env: NodeJS.ProcessEnv): EnvironmentError {
  try {
    readConfig(env, CWD);
  } catch (error) {
    if (error instanceof EnvironmentError) {
      return error;
    }
    throw error;
  }
  throw new Error(`readConfig accepted ${JSON.stringify(env)}`);
}

describe('sample game environment', () => {
  it('uses documented defaults', () => {
    const config = readConfig({}, CWD);

    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(8080);
    expect(config.sandboxPort).toBe(8081);
    expect(config.sequencer).toBeUndefined();
    expect(config.database).toEqual({ sqlite: path.join(CWD, DEFAULT_DATABASE_PATH) });
    expect(config.dataDirectory).toBe(path.join(CWD, '.data'));
    expect(config.webhookUrl).toBeUndefined();
    expect(config.keySecret).toBeUndefined();
    expect(config.destination).toBe(SANDBOX_DESTINATION);
    expect(config.build).toBe('auto');
  });

  it('reads every variable', () => {
    const config = readConfig(
      {
        HOST: '0.0.0.0',
        PORT: '9000',
        SANDBOX_PORT: '0',
        CODE_SEQUENCER_URL: 'http://127.0.0.1:7000/v1/',
        CODE_SEQUENCER_PUBLIC_KEY: SANDBOX_DESTINATION,
        CODE_PAY_DATABASE_URL: 'sqlite:data/game.db',
        CODE_PAY_WEBHOOK_URL: 'https://game.example/code-pay/webhook',
        CODE_PAY_KEY_SECRET: 'ab'.repeat(32),
        CODE_PAY_DESTINATION: SANDBOX_DESTINATION,
        SAMPLE_GAME_BUILD: 'skip',
        LOG_LEVEL: 'warn',
      },
      CWD,
    );

    expect(config.host).toBe('0.0.0.0');
    expect(config.port).toBe(9000);
    expect(config.sandboxPort).toBe(0);
    expect(config.sequencer).toEqual({ endpoint: 'http://127.0.0.1:7000/v1', publicKey: SANDBOX_DESTINATION });
    expect(config.database).toEqual({ sqlite: path.join(CWD, 'data', 'game.db') });
    expect(config.dataDirectory).toBe(path.join(CWD, 'data'));
    expect(config.webhookUrl).toBe('https://game.example/code-pay/webhook');
    expect(config.keySecret).toBe('ab'.repeat(32));
    expect(config.build).toBe('skip');
    expect(config.logLevel).toBe('warn');
  });

  it('passes postgres URLs to the kit', () => {
    const config = readConfig({ CODE_PAY_DATABASE_URL: 'postgres://game@127.0.0.1/game', ...SHARED_SECRETS }, CWD);
    expect(config.database).toEqual({ postgres: 'postgres://game@127.0.0.1/game' });
    expect(config.dataDirectory).toBe(path.join(CWD, '.data'));
  });

  it('requires shared secrets with postgres', () => {
    const postgres = { CODE_PAY_DATABASE_URL: 'postgres://game@127.0.0.1/game' };

    expect(configError(postgres).variable).toBe('CODE_PAY_KEY_SECRET');
    expect(configError({ ...postgres, CODE_PAY_KEY_SECRET: SHARED_SECRETS.CODE_PAY_KEY_SECRET }).variable).toBe('SAMPLE_GAME_TOKEN_SECRET');
  });

  it('reads the scale-out settings', () => {
    const config = readConfig(
      {
        CODE_PAY_REDIS_URL: 'redis://127.0.0.1:6379',
        CODE_PAY_POLL_INTERVAL_MS: '200',
        CODE_PAY_FIRST_CHECK_MS: '1000',
        CODE_PAY_MAX_CHECK_INTERVAL_MS: '1000',
        CODE_PAY_LEASE_MS: '3000',
        CODE_SEQUENCER_TIMEOUT_MS: '2000',
        CODE_PAY_RATE_LIMIT_BURST: '500',
        CODE_PAY_RATE_LIMIT_PER_SECOND: '50',
      },
      CWD,
    );

    expect(config.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(config.polling).toEqual({ intervalMs: 200, firstCheckAfterMs: 1000, maxCheckIntervalMs: 1000, leaseMs: 3000 });
    expect(config.sequencerTimeoutMs).toBe(2000);
    expect(config.rateLimit).toEqual({ burst: 500, perSecond: 50 });
  });

  it('leaves the scale-out settings unset by default', () => {
    const config = readConfig({}, CWD);

    expect(config.redisUrl).toBeUndefined();
    expect(config.polling).toEqual({});
    expect(config.sequencerTimeoutMs).toBeUndefined();
    expect(config.rateLimit).toEqual({});
  });

  it.each([
    ['PORT', { PORT: '-1' }],
    ['PORT', { PORT: '80.5' }],
    ['SANDBOX_PORT', { SANDBOX_PORT: 'many' }],
    ['HOST', { HOST: 'bad host!' }],
    ['CODE_SEQUENCER_URL', { CODE_SEQUENCER_PUBLIC_KEY: SANDBOX_DESTINATION }],
    ['CODE_SEQUENCER_PUBLIC_KEY', { CODE_SEQUENCER_URL: 'http://127.0.0.1:7000/v1', CODE_SEQUENCER_PUBLIC_KEY: 'abc' }],
    ['CODE_PAY_DATABASE_URL', { CODE_PAY_DATABASE_URL: 'sqlite:' }],
    ['CODE_PAY_DESTINATION', { CODE_PAY_DESTINATION: '11111111' }],
    ['SAMPLE_GAME_BUILD', { SAMPLE_GAME_BUILD: 'sometimes' }],
    ['SAMPLE_GAME_TOKEN_SECRET', { SAMPLE_GAME_TOKEN_SECRET: 'short' }],
    ['LOG_LEVEL', { LOG_LEVEL: 'loud' }],
    ['CODE_PAY_REDIS_URL', { CODE_PAY_REDIS_URL: 'http://127.0.0.1:6379' }],
    ['CODE_PAY_LEASE_MS', { CODE_PAY_LEASE_MS: '0' }],
    ['CODE_PAY_POLL_INTERVAL_MS', { CODE_PAY_POLL_INTERVAL_MS: 'often' }],
    ['CODE_SEQUENCER_TIMEOUT_MS', { CODE_SEQUENCER_TIMEOUT_MS: '1.5' }],
    ['CODE_PAY_RATE_LIMIT_BURST', { CODE_PAY_RATE_LIMIT_BURST: '0' }],
  ])('rejects a bad %s', (variable, env) => {
    const error = configError(env);
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable} `)).toBe(true);
  });

  it('requires a key secret for remote sequencers', () => {
    const error = configError({ CODE_SEQUENCER_URL: 'https://sequencer.example/v1', CODE_SEQUENCER_PUBLIC_KEY: SANDBOX_DESTINATION });
    expect(error.variable).toBe('CODE_PAY_KEY_SECRET');
    expect(error.message).toContain('openssl rand -hex 32');
  });

  it('hides secret values in errors', () => {
    const error = configError({ SAMPLE_GAME_TOKEN_SECRET: 'hunter2' });
    expect(error.message).not.toContain('hunter2');
    expect(error.message).toContain('<7 characters>');
  });
});

describe('sample game guest tokens', () => {
  const directories: string[] = [];

  afterEach(() => {
    for (const directory of directories.splice(0)) {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  it('verifies issued tokens', async () => {
    const guests = createGuestAuthority(SECRET);
    const identity = await guests.issue();
    await expect(guests.verify(identity.token)).resolves.toBe(identity.playerId);
  });

  it('rejects forged and malformed tokens', async () => {
    const guests = createGuestAuthority(SECRET);
    const otherGuests = createGuestAuthority(new TextEncoder().encode('another-secret-another-secret-another'));
    const foreign = await otherGuests.issue();
    const unsigned = new UnsecuredJWT({}).setSubject('guest_00000000-0000-0000-0000-000000000000').encode();
    const expired = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('guest_00000000-0000-0000-0000-000000000000')
      .setIssuer('phaser-code-pay-sample-game')
      .setAudience('phaser-code-pay-sample-game')
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(SECRET);
    const wrongSubject = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('admin')
      .setIssuer('phaser-code-pay-sample-game')
      .setAudience('phaser-code-pay-sample-game')
      .sign(SECRET);
    const wrongAudience = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('guest_00000000-0000-0000-0000-000000000000')
      .setIssuer('phaser-code-pay-sample-game')
      .setAudience('another-game')
      .sign(SECRET);

    const cases: Array<[string, unknown, string]> = [
      ['missing', undefined, 'missing'],
      ['empty', '', 'missing'],
      ['number', 42, 'missing'],
      ['oversized', 'a'.repeat(3000), 'longer than 2048 characters'],
      ['garbage', 'not.a.token', 'malformed'],
      ['other secret', foreign.token, 'signature does not match'],
      ['alg none', unsigned, 'algorithm is not HS256'],
      ['expired', expired, 'expired'],
      ['wrong subject', wrongSubject, 'its subject is not a guest player id'],
      ['wrong audience', wrongAudience, 'claim aud is invalid'],
    ];
    for (const [name, token, reason] of cases) {
      const error = await guests.verify(token).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error, name).toBeInstanceOf(GuestTokenError);
      expect((error as GuestTokenError).reason, name).toBe(reason);
    }
  });

  it('keeps the generated secret across restarts', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'sample-secret-'));
    directories.push(directory);
    const dataDirectory = path.join(directory, 'data');
    await prepareDataDirectory(dataDirectory);

    const first = await loadTokenSecret(undefined, dataDirectory);
    const second = await loadTokenSecret(undefined, dataDirectory);
    expect(Buffer.from(second).equals(Buffer.from(first))).toBe(true);

    const file = path.join(dataDirectory, TOKEN_SECRET_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(path.join(dataDirectory, '.gitignore'), 'utf8')).toContain('*');

    const token = (await createGuestAuthority(first).issue()).token;
    await expect(createGuestAuthority(second).verify(token)).resolves.toMatch(/^guest_/);
  });

  it('prefers the configured secret', async () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'sample-secret-'));
    directories.push(directory);

    const secret = await loadTokenSecret('configured-secret-configured-secret', directory);
    expect(new TextDecoder().decode(secret)).toBe('configured-secret-configured-secret');
    expect(() => statSync(path.join(directory, TOKEN_SECRET_FILE))).toThrow();
  });
});
