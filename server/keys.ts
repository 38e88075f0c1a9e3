// Idempotency key derivation. The kit sends Code an HMAC of the purchase
// scope under the game's key secret, never the plain game, item or player id.
// Code's key space is shared by every merchant, and the key alone determines
// the client secret (the first 11 bytes of its SHA-256), so a plain key could
// collide with another merchant's or be computed by another player.

import { createHmac, randomBytes } from 'node:crypto';

import { PURCHASE_KINDS, type PurchaseKind } from '../protocol/index.js';
import { CodePayError, ConfigError } from './errors.js';

/** Minimum length of a production key secret, in decoded bytes. */
export const KEY_SECRET_MIN_BYTES = 32;

/**
 * Prefix of every derived idempotency key. A future derivation scheme gets a
 * new prefix, so keys of both schemes can never be equal.
 */
export const IDEMPOTENCY_KEY_PREFIX = 'cp1.';

/** Domain-separation label, the first field of the HMAC input. */
const SCOPE_LABEL = 'phaser-code-pay/idempotency-key/v1';

const GENERATE_COMMAND = `node -e "console.log(require('crypto').randomBytes(32).toString('hex'))"`;

/** The purchase scope that one idempotency key identifies. */
export interface KeyScope {
  gameId: string;
  kind: PurchaseKind;
  itemId: string;
  playerId: string;
  /** Required for `consumable` items and ignored for the other kinds. */
  attemptId?: string;
}

/**
 * Derives the Code idempotency key of a purchase scope:
 * `cp1.` + base64url(HMAC-SHA256(keySecret, encoded scope)), 47 characters.
 *
 * The scope is encoded as length-prefixed UTF-8 fields (a 4-byte big-endian
 * length before each), so no two different scopes share an encoding. `unique`
 * and `permanent` keys cover game, kind, item and player, so every retry of
 * one player's purchase of one item gets the same key forever. `consumable`
 * keys add the attempt id. An `attemptId` passed with another kind is ignored,
 * because including it would give each retry a new intent and could charge
 * the player twice.
 *
 * Throws a `CodePayError` with code `invalid_request` for an empty field, an
 * unknown kind, a consumable without an attempt id, or a string with a lone
 * UTF-16 surrogate (UTF-8 encoding would map it to U+FFFD and merge scopes).
 */
export function deriveIdempotencyKey(keySecret: Uint8Array, scope: KeyScope): string {
  if (!(keySecret instanceof Uint8Array) || keySecret.length === 0) {
    throw new CodePayError('internal', 'The key secret is empty; pass the bytes returned by parseKeySecret().');
  }

  const fields = scopeFields(scope);

  const hmac = createHmac('sha256', keySecret);
  for (const field of [SCOPE_LABEL, ...fields]) {
    const bytes = Buffer.from(field, 'utf8');
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(bytes.length, 0);
    hmac.update(length);
    hmac.update(bytes);
  }

  return IDEMPOTENCY_KEY_PREFIX + hmac.digest('base64url');
}

/** Validates a scope and returns the fields that go into the HMAC, kind first after the game. */
function scopeFields(scope: KeyScope): string[] {
  const context = { itemId: scope.itemId, playerId: scope.playerId };

  if (!PURCHASE_KINDS.includes(scope.kind)) {
    throw new CodePayError(
      'invalid_request',
      `Invalid purchase kind ${JSON.stringify(scope.kind)}; expected one of ${PURCHASE_KINDS.join(', ')}.`,
      context,
    );
  }

  const fields = [
    requireField('gameId', scope.gameId, context),
    scope.kind,
    requireField('itemId', scope.itemId, context),
    requireField('playerId', scope.playerId, context),
  ];

  if (scope.kind === 'consumable') {
    if (scope.attemptId === undefined) {
      throw new CodePayError(
        'invalid_request',
        `Missing attempt id for consumable item ${JSON.stringify(scope.itemId)}; the plugin sends one with each purchase.`,
        context,
      );
    }
    fields.push(requireField('attemptId', scope.attemptId, context));
  }

  return fields;
}

function requireField(name: string, value: unknown, context: { itemId: string; playerId: string }): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new CodePayError('invalid_request', `Invalid key scope: ${name} must be a non-empty string.`, context);
  }
  if (/\p{Surrogate}/u.test(value)) {
    throw new CodePayError(
      'invalid_request',
      `Invalid key scope: ${name} contains a lone UTF-16 surrogate, which has no UTF-8 encoding.`,
      context,
    );
  }
  return value;
}

/**
 * Parses the key secret from `CODE_PAY_KEY_SECRET` or the `keySecret` option.
 *
 * Text made only of hex digits (with an even length) is read as hex. Any
 * other text is read as base64 or base64url, and bytes are taken as they are.
 * Outside the sandbox the secret must contain at least 32 bytes and must not
 * be of obviously low entropy. Rejected patterns are a single repeated byte,
 * fewer than 16 distinct byte values, a counting sequence (all bytes one step
 * apart) and a repeated block. A random 32-byte secret passes these checks
 * with overwhelming probability. In the sandbox any non-empty secret is
 * accepted.
 *
 * Throws a `ConfigError` that names the setting and the command to generate a
 * good secret. The message never contains the secret.
 */
export function parseKeySecret(value: string | Uint8Array, options: { sandbox: boolean }): Uint8Array {
  const bytes = decodeKeySecret(value);

  if (bytes.length === 0) {
    throw keySecretError('is empty');
  }
  if (options.sandbox) {
    return bytes;
  }

  if (bytes.length < KEY_SECRET_MIN_BYTES) {
    throw keySecretError(`is ${bytes.length} bytes long after decoding; at least ${KEY_SECRET_MIN_BYTES} are required`);
  }

  const weakness = findLowEntropyPattern(bytes);
  if (weakness !== undefined) {
    throw keySecretError(`looks like low-entropy material (${weakness})`);
  }

  return bytes;
}

/** Generates a random 32-byte key secret, for the sandbox or a setup script. */
export function generateKeySecret(): Uint8Array {
  return new Uint8Array(randomBytes(KEY_SECRET_MIN_BYTES));
}

/** Encodes a key secret as lower-case hex, the form `parseKeySecret` reads back. */
export function formatKeySecret(keySecret: Uint8Array): string {
  return Buffer.from(keySecret).toString('hex');
}

function decodeKeySecret(value: string | Uint8Array): Uint8Array {
  if (value instanceof Uint8Array) {
    return new Uint8Array(value);
  }
  if (typeof value !== 'string') {
    throw keySecretError(`is a ${typeof value}; expected a hex or base64 string`);
  }

  const text = value.trim();
  if (/^(?:[0-9a-fA-F]{2})*$/.test(text)) {
    return new Uint8Array(Buffer.from(text, 'hex'));
  }

  // Node's base64 decoder reads both alphabets, so base64url needs no branch.
  // The length check rejects a length of 1 mod 4, which no encoder produces.
  const unpadded = text.replace(/={1,2}$/, '');
  if (!/^[A-Za-z0-9+/_-]+$/.test(unpadded) || unpadded.length % 4 === 1) {
    throw keySecretError('is neither hex nor base64 text');
  }
  return new Uint8Array(Buffer.from(unpadded, 'base64'));
}

/** Returns a description of the first low-entropy pattern found, or undefined. */
function findLowEntropyPattern(bytes: Uint8Array): string | undefined {
  const distinct = new Set(bytes).size;
  if (distinct === 1) {
    return 'a single repeated byte';
  }
  if (distinct < 16) {
    return `only ${distinct} distinct byte values`;
  }

  const step = (bytes[1] - bytes[0] + 256) % 256;
  let counting = true;
  for (let i = 2; i < bytes.length && counting; i++) {
    counting = (bytes[i] - bytes[i - 1] + 256) % 256 === step;
  }
  if (counting) {
    return 'a counting sequence';
  }

  for (let period = 1; period <= bytes.length / 2; period++) {
    let repeats = true;
    for (let i = period; i < bytes.length && repeats; i++) {
      repeats = bytes[i] === bytes[i - period];
    }
    if (repeats) {
      return `a ${period}-byte block repeated`;
    }
  }

  return undefined;
}

function keySecretError(problem: string): ConfigError {
  return new ConfigError(
    `Invalid key secret: CODE_PAY_KEY_SECRET (the keySecret option) ${problem}. ` +
      `Use at least ${KEY_SECRET_MIN_BYTES} random bytes written as hex or base64, for example the output of ` +
      `${GENERATE_COMMAND}, and keep it stable: a new secret gives every purchase a new idempotency key.`,
  );
}
