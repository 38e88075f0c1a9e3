import { createHmac } from 'node:crypto';

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { PURCHASE_KINDS } from '../protocol/index.js';
import { CodePayError, ConfigError } from '../server/errors.js';
import {
  IDEMPOTENCY_KEY_PREFIX,
  type KeyScope,
  deriveIdempotencyKey,
  formatKeySecret,
  generateKeySecret,
  parseKeySecret,
} from '../server/keys.js';

const SECRET = new Uint8Array(Buffer.from('3f1d6a0b9c2e47f58a6d1b0c3e9f7a2546b8d0e1f2a3c4b5d6e7f80912a3b4c5', 'hex'));
const OTHER_SECRET = new Uint8Array(Buffer.from('a7c94e1f03b2d8651e9f0a4c7b3d2e1f5a6b8c9d0e1f2a3b4c5d6e7f8091a2b3', 'hex'));

const PERMANENT: KeyScope = { gameId: 'game1', kind: 'permanent', itemId: 'sword', playerId: 'player-1' };
const CONSUMABLE: KeyScope = {
  gameId: 'game1',
  kind: 'consumable',
  itemId: 'gems-10',
  playerId: 'player-1',
  attemptId: 'attempt-0001',
};

/** Computes the documented key encoding independently of server/keys.ts. */
function referenceKey(secret: Uint8Array, fields: string[]): string {
  const hmac = createHmac('sha256', secret);
  for (const field of ['phaser-code-pay/idempotency-key/v1', ...fields]) {
    const bytes = Buffer.from(field, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    hmac.update(Buffer.concat([length, bytes]));
  }
  return 'cp1.' + hmac.digest('base64url');
}

function expectCodePayError(action: () => unknown, code: string, messagePart: string): void {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(CodePayError);
  expect((caught as CodePayError).code).toBe(code);
  expect((caught as CodePayError).message).toContain(messagePart);
}

function expectConfigError(action: () => unknown, messagePart: string): ConfigError {
  let caught: unknown;
  try {
    action();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(ConfigError);
  expect((caught as ConfigError).message).toContain(messagePart);
  return caught as ConfigError;
}

describe('deriveIdempotencyKey', () => {
  it('returns a versioned base64url key', () => {
    const key = deriveIdempotencyKey(SECRET, PERMANENT);

    expect(key.startsWith(IDEMPOTENCY_KEY_PREFIX)).toBe(true);
    expect(key).toMatch(/^cp1\.[A-Za-z0-9_-]{43}$/);
  });

  it('is stable for the same scope', () => {
    expect(deriveIdempotencyKey(SECRET, { ...PERMANENT })).toBe(deriveIdempotencyKey(SECRET, PERMANENT));
    expect(deriveIdempotencyKey(SECRET, { ...CONSUMABLE })).toBe(deriveIdempotencyKey(SECRET, CONSUMABLE));
  });

  it('matches the documented encoding', () => {
    expect(deriveIdempotencyKey(SECRET, PERMANENT)).toBe(
      referenceKey(SECRET, ['game1', 'permanent', 'sword', 'player-1']),
    );
    expect(deriveIdempotencyKey(SECRET, CONSUMABLE)).toBe(
      referenceKey(SECRET, ['game1', 'consumable', 'gems-10', 'player-1', 'attempt-0001']),
    );
  });

  it('separates every scope field', () => {
    const base = deriveIdempotencyKey(SECRET, CONSUMABLE);

    expect(deriveIdempotencyKey(SECRET, { ...CONSUMABLE, gameId: 'game2' })).not.toBe(base);
    expect(deriveIdempotencyKey(SECRET, { ...CONSUMABLE, itemId: 'gems-11' })).not.toBe(base);
    expect(deriveIdempotencyKey(SECRET, { ...CONSUMABLE, playerId: 'player-2' })).not.toBe(base);
    expect(deriveIdempotencyKey(SECRET, { ...CONSUMABLE, attemptId: 'attempt-0002' })).not.toBe(base);
    expect(deriveIdempotencyKey(OTHER_SECRET, CONSUMABLE)).not.toBe(base);
  });

  it('separates the kinds', () => {
    const scope = { gameId: 'game1', itemId: 'sword', playerId: 'player-1', attemptId: 'attempt-0001' };
    const keys = PURCHASE_KINDS.map((kind) => deriveIdempotencyKey(SECRET, { ...scope, kind }));

    expect(new Set(keys).size).toBe(PURCHASE_KINDS.length);
  });

  it('keeps field boundaries unambiguous', () => {
    const pairs: Array<[KeyScope, KeyScope]> = [
      [
        { ...PERMANENT, gameId: 'a-b', itemId: 'c' },
        { ...PERMANENT, gameId: 'a', itemId: 'b-c' },
      ],
      [
        { ...PERMANENT, itemId: 'ab', playerId: 'c' },
        { ...PERMANENT, itemId: 'a', playerId: 'bc' },
      ],
      [
        { ...CONSUMABLE, playerId: 'p1', attemptId: 'attempt-12345' },
        { ...CONSUMABLE, playerId: 'p1attempt-', attemptId: '12345' },
      ],
      [
        { ...PERMANENT, gameId: 'g\u0000', itemId: 'x' },
        { ...PERMANENT, gameId: 'g', itemId: '\u0000x' },
      ],
    ];

    for (const [left, right] of pairs) {
      expect(deriveIdempotencyKey(SECRET, left)).not.toBe(deriveIdempotencyKey(SECRET, right));
    }
  });

  it('ignores attempt ids of non-consumables', () => {
    for (const kind of ['unique', 'permanent'] as const) {
      const withoutAttempt = deriveIdempotencyKey(SECRET, { ...PERMANENT, kind });
      const withAttempt = deriveIdempotencyKey(SECRET, { ...PERMANENT, kind, attemptId: 'attempt-0001' });

      expect(withAttempt).toBe(withoutAttempt);
    }
  });

  it('requires an attempt id for consumables', () => {
    const { attemptId: _unused, ...withoutAttempt } = CONSUMABLE;

    expectCodePayError(() => deriveIdempotencyKey(SECRET, withoutAttempt), 'invalid_request', 'Missing attempt id');
    expectCodePayError(
      () => deriveIdempotencyKey(SECRET, { ...CONSUMABLE, attemptId: '' }),
      'invalid_request',
      'attemptId must be a non-empty string',
    );
  });

  it('rejects invalid scopes', () => {
    for (const field of ['gameId', 'itemId', 'playerId'] as const) {
      expectCodePayError(
        () => deriveIdempotencyKey(SECRET, { ...PERMANENT, [field]: '' }),
        'invalid_request',
        `${field} must be a non-empty string`,
      );
    }
    expectCodePayError(
      () => deriveIdempotencyKey(SECRET, { ...PERMANENT, kind: 'rental' as never }),
      'invalid_request',
      'Invalid purchase kind "rental"',
    );
    expectCodePayError(
      () => deriveIdempotencyKey(SECRET, { ...PERMANENT, playerId: 'p\uD800' }),
      'invalid_request',
      'lone UTF-16 surrogate',
    );
    expectCodePayError(() => deriveIdempotencyKey(new Uint8Array(0), PERMANENT), 'internal', 'key secret is empty');
  });

  it('gives distinct scopes distinct keys', () => {
    const text = fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' });
    const scope = fc.record({
      gameId: text,
      kind: fc.constantFrom(...PURCHASE_KINDS),
      itemId: text,
      playerId: text,
      attemptId: text,
    });

    fc.assert(
      fc.property(scope, scope, (left, right) => {
        const leftKey = deriveIdempotencyKey(SECRET, left);
        const rightKey = deriveIdempotencyKey(SECRET, right);
        const sameScope =
          left.gameId === right.gameId &&
          left.kind === right.kind &&
          left.itemId === right.itemId &&
          left.playerId === right.playerId &&
          (left.kind !== 'consumable' || left.attemptId === right.attemptId);

        expect(leftKey === rightKey).toBe(sameScope);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parseKeySecret', () => {
  const hex = formatKeySecret(SECRET);

  it('reads hex, base64 and base64url text', () => {
    const base64 = Buffer.from(SECRET).toString('base64');
    const base64url = Buffer.from(SECRET).toString('base64url');

    expect(parseKeySecret(hex, { sandbox: false })).toEqual(SECRET);
    expect(parseKeySecret(hex.toUpperCase(), { sandbox: false })).toEqual(SECRET);
    expect(parseKeySecret(base64, { sandbox: false })).toEqual(SECRET);
    expect(parseKeySecret(base64url, { sandbox: false })).toEqual(SECRET);
    expect(parseKeySecret(`  ${hex}\n`, { sandbox: false })).toEqual(SECRET);
  });

  it('copies byte input', () => {
    const input = new Uint8Array(SECRET);
    const parsed = parseKeySecret(input, { sandbox: false });
    input.fill(0);

    expect(parsed).toEqual(SECRET);
  });

  it('rejects short secrets outside the sandbox', () => {
    const error = expectConfigError(
      () => parseKeySecret('00112233445566778899aabbccddeeff', { sandbox: false }),
      'is 16 bytes long after decoding; at least 32 are required',
    );

    expect(error.message).toContain('CODE_PAY_KEY_SECRET');
    expect(error.message).toContain('keySecret');
    expect(error.message).toContain(`randomBytes(32).toString('hex')`);
    expect(error.message).not.toContain('00112233445566778899aabbccddeeff');
  });

  it('rejects low-entropy secrets outside the sandbox', () => {
    const counting = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
    const repeatedBlock = Buffer.concat([SECRET.subarray(0, 16), SECRET.subarray(0, 16)]);
    const fewValues = Buffer.from(Array.from({ length: 48 }, (_, i) => (i * 7) % 11));
    const cases: Array<[string | Uint8Array, string]> = [
      ['00'.repeat(32), 'a single repeated byte'],
      ['a'.repeat(64), 'a single repeated byte'],
      ['abcd'.repeat(16), 'only 2 distinct byte values'],
      [counting, 'a counting sequence'],
      [repeatedBlock, 'a 16-byte block repeated'],
      [fewValues, 'only 11 distinct byte values'],
    ];

    for (const [value, reason] of cases) {
      expectConfigError(() => parseKeySecret(value, { sandbox: false }), reason);
    }
  });

  it('rejects text that is not hex or base64', () => {
    expectConfigError(() => parseKeySecret('correct horse battery staple!', { sandbox: false }), 'neither hex nor base64');
    expectConfigError(() => parseKeySecret('abcde', { sandbox: false }), 'neither hex nor base64');
    expectConfigError(() => parseKeySecret(42 as never, { sandbox: false }), 'is a number');
  });

  it('rejects empty secrets even in the sandbox', () => {
    expectConfigError(() => parseKeySecret('', { sandbox: true }), 'is empty');
    expectConfigError(() => parseKeySecret('   ', { sandbox: false }), 'is empty');
    expectConfigError(() => parseKeySecret(new Uint8Array(0), { sandbox: true }), 'is empty');
  });

  it('accepts weak secrets in the sandbox', () => {
    expect(parseKeySecret('dev', { sandbox: true })).toEqual(new Uint8Array(Buffer.from('dev', 'base64')));
    expect(parseKeySecret('00'.repeat(32), { sandbox: true })).toEqual(new Uint8Array(32));
  });

  it('accepts generated secrets', () => {
    const first = generateKeySecret();
    const second = generateKeySecret();

    expect(first.length).toBe(32);
    expect(Buffer.from(first).equals(Buffer.from(second))).toBe(false);
    expect(parseKeySecret(formatKeySecret(first), { sandbox: false })).toEqual(first);
  });

  it('accepts random secrets', () => {
    fc.assert(
      fc.property(fc.noBias(fc.uint8Array({ minLength: 32, maxLength: 64 })), (bytes) => {
        const parsed = parseKeySecret(Buffer.from(bytes).toString('base64'), { sandbox: false });

        expect(parsed).toEqual(bytes);
      }),
      { numRuns: 1000 },
    );
  });
});
