// Ed25519 for rendezvous keys, with two interchangeable backends chosen once
// when this module loads:
// - `sodium-native`: libsodium through the optional `sodium-native`
//   dependency, about 18 µs each to derive a key pair and to sign on the
//   2-CPU AMD EPYC machine described in docs/BENCHMARKS.md.
// - `noble`: the pure-JavaScript `@noble/curves` implementation, which the
//   Code SDK uses too, roughly 15 times slower there.
// Ed25519 signatures are deterministic (RFC 8032), so both backends return
// the same bytes for the same seed and message.
//
// The environment variable CODE_PAY_ED25519 overrides the choice: `js` forces
// the `noble` backend, `native` requires `sodium-native` and fails to load
// without it, and `auto` (or no value) prefers `sodium-native`.

import { createRequire } from 'node:module';

import { ed25519 as nobleEd25519 } from '@noble/curves/ed25519';

import { ConfigError } from './errors.js';

export type Ed25519BackendName = 'sodium-native' | 'noble';

export interface Ed25519KeyPair {
  publicKey: Uint8Array;
  /** 64 bytes: the 32-byte seed followed by the public key, as libsodium lays it out. */
  secretKey: Uint8Array;
}

export interface Ed25519Backend {
  readonly name: Ed25519BackendName;
  /** Derives the key pair of a 32-byte seed. */
  keyPairFromSeed(seed: Uint8Array): Ed25519KeyPair;
  /** Signs a message with a 64-byte secret key and returns the 64-byte signature. */
  sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array;
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

/** The subset of the `sodium-native` 4 API this module calls. */
interface SodiumNative {
  crypto_sign_PUBLICKEYBYTES: number;
  crypto_sign_SECRETKEYBYTES: number;
  crypto_sign_BYTES: number;
  crypto_sign_seed_keypair(publicKey: Buffer, secretKey: Buffer, seed: Buffer): void;
  crypto_sign_detached(signature: Buffer, message: Buffer, secretKey: Buffer): void;
  crypto_sign_verify_detached(signature: Buffer, message: Buffer, publicKey: Buffer): boolean;
}

const SEED_BYTES = 32;

function checkLength(name: string, value: Uint8Array, expected: number): void {
  if (!(value instanceof Uint8Array) || value.length !== expected) {
    throw new TypeError(`Invalid Ed25519 ${name}: expected ${expected} bytes.`);
  }
}

/** The pure-JavaScript backend, always available. */
export const nobleEd25519Backend: Ed25519Backend = Object.freeze({
  name: 'noble' as const,

  keyPairFromSeed(seed: Uint8Array): Ed25519KeyPair {
    checkLength('seed', seed, SEED_BYTES);
    const publicKey = nobleEd25519.getPublicKey(seed);
    const secretKey = new Uint8Array(64);
    secretKey.set(seed, 0);
    secretKey.set(publicKey, SEED_BYTES);
    return { publicKey, secretKey };
  },

  sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
    checkLength('secret key', secretKey, 64);
    return nobleEd25519.sign(message, secretKey.subarray(0, SEED_BYTES));
  },

  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
    return nobleEd25519.verify(signature, message, publicKey);
  },
});

/**
 * Loads the libsodium backend. Throws when `sodium-native` is not installed
 * or its native binding does not load on this platform.
 */
export function loadSodiumEd25519Backend(): Ed25519Backend {
  const require = createRequire(import.meta.url);
  const sodium = require('sodium-native') as SodiumNative;

  return Object.freeze({
    name: 'sodium-native' as const,

    keyPairFromSeed(seed: Uint8Array): Ed25519KeyPair {
      checkLength('seed', seed, SEED_BYTES);
      const publicKey = Buffer.alloc(sodium.crypto_sign_PUBLICKEYBYTES);
      const secretKey = Buffer.alloc(sodium.crypto_sign_SECRETKEYBYTES);
      sodium.crypto_sign_seed_keypair(publicKey, secretKey, toBuffer(seed));
      return { publicKey, secretKey };
    },

    sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
      checkLength('secret key', secretKey, sodium.crypto_sign_SECRETKEYBYTES);
      const signature = Buffer.alloc(sodium.crypto_sign_BYTES);
      sodium.crypto_sign_detached(signature, toBuffer(message), toBuffer(secretKey));
      return signature;
    },

    verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
      if (signature.length !== sodium.crypto_sign_BYTES || publicKey.length !== sodium.crypto_sign_PUBLICKEYBYTES) {
        return false;
      }
      return sodium.crypto_sign_verify_detached(toBuffer(signature), toBuffer(message), toBuffer(publicKey));
    },
  });
}

/** Wraps a Uint8Array in a Buffer over the same memory, without copying. */
function toBuffer(bytes: Uint8Array): Buffer {
  if (Buffer.isBuffer(bytes)) {
    return bytes;
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The backend selected at load time, with the reason. */
export interface Ed25519Selection {
  backend: Ed25519BackendName;
  /** The CODE_PAY_ED25519 value read at load time, or `auto` when unset. */
  requested: 'auto' | 'js' | 'native';
  /** The reason `sodium-native` is not in use, when it is not. */
  fallbackReason?: string;
}

function selectBackend(): { backend: Ed25519Backend; selection: Ed25519Selection } {
  const raw = process.env.CODE_PAY_ED25519?.trim().toLowerCase() || 'auto';
  if (raw !== 'auto' && raw !== 'js' && raw !== 'native') {
    throw new ConfigError(
      `Invalid CODE_PAY_ED25519 value ${JSON.stringify(process.env.CODE_PAY_ED25519)}: ` +
        'use "js" to force the JavaScript backend, "native" to require sodium-native, or leave it unset.',
    );
  }

  if (raw === 'js') {
    return {
      backend: nobleEd25519Backend,
      selection: { backend: 'noble', requested: 'js', fallbackReason: 'CODE_PAY_ED25519=js' },
    };
  }

  try {
    const backend = loadSodiumEd25519Backend();
    return { backend, selection: { backend: 'sodium-native', requested: raw } };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (raw === 'native') {
      throw new ConfigError(
        `CODE_PAY_ED25519=native is set but sodium-native failed to load (${reason}). ` +
          'Install it with `npm install sodium-native@4`, or unset CODE_PAY_ED25519 to use the JavaScript backend.',
      );
    }
    return {
      backend: nobleEd25519Backend,
      selection: { backend: 'noble', requested: 'auto', fallbackReason: `sodium-native failed to load: ${reason}` },
    };
  }
}

const selected = selectBackend();

/** The backend in use, selected once when this module loaded. */
export const ed25519: Ed25519Backend = selected.backend;

/** The selection report, for a start-up log line or `/healthz`. */
export const ed25519Selection: Readonly<Ed25519Selection> = Object.freeze(selected.selection);
