// Verification of Code's payment webhooks. Code POSTs a compact JWS with
// content type `application/jwt`, algorithm EdDSA, signed by Code's Ed25519
// key (code-server pkg/code/webhook/execution.go and payload.go, commit
// 97e549c). The token has no expiry or issued-at claim, so a replayed token
// verifies again: the kit's confirmation is idempotent, which makes a replay
// harmless, and the claims are checked against the stored purchase.
import { ed25519 } from '@noble/curves/ed25519';
import bs58 from 'bs58';
import {
  CompactSign,
  compactVerify,
  decodeProtectedHeader,
  errors as joseErrors,
  importJWK,
  type CryptoKey,
  type JWK,
  type KeyObject,
} from 'jose';
import { z } from 'zod';

import type { Purchase } from '../protocol/index.js';
import { ConfigError } from './errors.js';

/** Code's production webhook signing key (base58 Ed25519 public key). */
export const CODE_WEBHOOK_PUBLIC_KEY = 'codeHy87wGD5oMRLG75qKqsSi1vWE3oxNyYmXo5F9YR';

/** Maximum webhook body size in bytes; a token with Code's payment claims is about 400 bytes. */
export const MAX_WEBHOOK_BYTES = 16 * 1024;

export type WebhookRejectionReason = 'content_type' | 'malformed' | 'algorithm' | 'signature' | 'claims' | 'state' | 'too_large';

/** A webhook that fails verification. The route responds 400 and changes nothing. */
export class WebhookRejectedError extends Error {
  readonly reason: WebhookRejectionReason;

  constructor(reason: WebhookRejectionReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WebhookRejectedError';
    this.reason = reason;
  }
}

function isBase58PublicKey(value: string): boolean {
  try {
    return bs58.decode(value).length === 32;
  } catch {
    return false;
  }
}

const base58PublicKey = z.string().max(64).refine(isBase58PublicKey, 'expected a base58 32-byte public key');

const nonNegativeNumber = z.number().finite().nonnegative();

/** A quark count: a JSON number, or a decimal string for counts beyond 2^53. */
const quarkCount = z.union([z.number().int().nonnegative(), z.string().regex(/^\d{1,20}$/)]);

/** The claims of a payment webhook as Code signs them. */
const claimsSchema = z.object({
  intent: base58PublicKey,
  currency: z
    .string()
    .regex(/^[A-Za-z]{3}$/, 'expected a three-letter currency code')
    .transform((currency) => currency.toLowerCase()),
  amount: nonNegativeNumber,
  exchangeRate: nonNegativeNumber,
  quarks: quarkCount,
  fees: quarkCount,
  destination: base58PublicKey,
  state: z.string(),
  /** Set for login intents: the user's public key for this app. */
  user: z.string().max(64).optional(),
});

/** Verified webhook claims; `currency` is lower case, as the kit stores it. */
export interface WebhookClaims {
  intent: string;
  currency: string;
  amount: number;
  exchangeRate: number;
  quarks: number | string;
  fees: number | string;
  destination: string;
  state: 'SUBMITTED';
  user?: string;
}

export interface WebhookVerifierOptions {
  /** Base58 Ed25519 public key of the sequencer's webhook signer. Default: Code's production key. */
  publicKey?: string;
  /** Maximum body size in bytes. Default 16 KiB. */
  maxBytes?: number;
}

export interface WebhookVerifier {
  /** The base58 public key tokens must be signed with. */
  readonly publicKey: string;
  /** Verifies one webhook request body; throws `WebhookRejectedError` with a reason. */
  verify(body: string | Buffer | Uint8Array, contentType: string | undefined): Promise<WebhookClaims>;
}

/** Decodes a base58 Ed25519 public key, or throws a ConfigError naming the value. */
function decodePublicKey(publicKey: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = bs58.decode(publicKey);
  } catch {
    throw new ConfigError(`Invalid option \`sequencer.publicKey\` ${JSON.stringify(publicKey)}: not base58; use the base58 webhook signing key of the sequencer.`);
  }
  if (bytes.length !== 32) {
    throw new ConfigError(
      `Invalid option \`sequencer.publicKey\` ${publicKey}: decodes to ${bytes.length} bytes, expected a 32-byte Ed25519 public key.`,
    );
  }
  return bytes;
}

function publicKeyJwk(publicKey: Uint8Array): JWK {
  return { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') };
}

const COMPACT_JWS_PATTERN = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

/** Checks the content type: `application/jwt`, with or without parameters such as `charset`. */
function checkContentType(contentType: string | undefined): void {
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase();
  if (mediaType === 'application/jwt') {
    return;
  }
  throw new WebhookRejectedError(
    'content_type',
    `Invalid webhook content type ${JSON.stringify(contentType ?? '')}; Code sends application/jwt. ` +
      'Is a proxy or client rewriting the header, or is something other than Code calling this route?',
  );
}

/** Reads the body as text, enforcing the size limit before decoding. */
function readToken(body: string | Buffer | Uint8Array, maxBytes: number): string {
  const size = typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.byteLength;
  if (size > maxBytes) {
    throw new WebhookRejectedError('too_large', `The webhook body is ${size} bytes, more than the ${maxBytes}-byte limit; a payment webhook token is about 400 bytes.`);
  }

  const text = typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  const token = text.trim();
  if (!COMPACT_JWS_PATTERN.test(token)) {
    throw new WebhookRejectedError(
      'malformed',
      'The webhook body is not a compact JWS (three base64url parts separated by dots). ' +
        'Are you passing the raw request body? A JSON or URL-encoded body parser in front of the webhook route changes it; ' +
        "read it with express.text({ type: 'application/jwt' }) or mount the route before other body parsers.",
    );
  }
  return token;
}

/** Checks the header's algorithm before any key is used, so `none` and HMAC tokens never reach verification. */
function checkAlgorithm(token: string): void {
  let algorithm: unknown;
  try {
    algorithm = decodeProtectedHeader(token).alg;
  } catch (error) {
    throw new WebhookRejectedError('malformed', 'The webhook token header is not base64url-encoded JSON; the body is not a token Code signed.', { cause: error });
  }
  if (algorithm !== 'EdDSA') {
    throw new WebhookRejectedError(
      'algorithm',
      `The webhook token uses algorithm ${JSON.stringify(algorithm)}; only EdDSA tokens signed by the sequencer's key are accepted. The token is forged or not from Code.`,
    );
  }
}

function parseClaims(payload: Uint8Array): WebhookClaims {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch (error) {
    throw new WebhookRejectedError('claims', 'The webhook token payload is not JSON.', { cause: error });
  }

  const parsed = claimsSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'payload'}: ${issue.message}`).join('; ');
    throw new WebhookRejectedError('claims', `The webhook claims are invalid (${problems}); a payment webhook carries intent, currency, amount, exchangeRate, quarks, fees, destination and state.`);
  }

  const claims = parsed.data;
  if (claims.state !== 'SUBMITTED') {
    throw new WebhookRejectedError('state', `The webhook state is ${JSON.stringify(claims.state)}; only SUBMITTED confirms a payment, so this webhook changes nothing.`);
  }
  return { ...claims, state: 'SUBMITTED' };
}

/** Creates a verifier for webhooks signed by one sequencer key. */
export function createWebhookVerifier(options: WebhookVerifierOptions = {}): WebhookVerifier {
  const publicKey = options.publicKey ?? CODE_WEBHOOK_PUBLIC_KEY;
  const maxBytes = options.maxBytes ?? MAX_WEBHOOK_BYTES;
  const keyPromise = importJWK(publicKeyJwk(decodePublicKey(publicKey)), 'EdDSA');
  // Avoids an unhandled rejection before the first verify(); verify() awaits the same promise.
  keyPromise.catch(() => undefined);

  return {
    publicKey,

    async verify(body, contentType) {
      checkContentType(contentType);
      const token = readToken(body, maxBytes);
      checkAlgorithm(token);

      let payload: Uint8Array;
      try {
        const verified = await compactVerify(token, await keyPromise, { algorithms: ['EdDSA'] });
        payload = verified.payload;
      } catch (error) {
        if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
          throw new WebhookRejectedError(
            'signature',
            `The webhook signature does not verify with the configured public key ${publicKey}. ` +
              'Is sequencer.publicKey the key of the sequencer that sent it? The sandbox signs with its own key (GET /control/public-key); ' +
              `Code's production key is ${CODE_WEBHOOK_PUBLIC_KEY}. Otherwise the token is forged or was changed in transit.`,
            { cause: error },
          );
        }
        throw new WebhookRejectedError('malformed', `The webhook token could not be verified: ${(error as Error).message}.`, { cause: error });
      }

      return parseClaims(payload);
    },
  };
}

/** The purchase fields a webhook's claims must match. */
export type PurchaseForClaims = Pick<Purchase, 'intentId' | 'destination' | 'amount' | 'currency'>;

export type ClaimsMismatch = 'intent' | 'destination' | 'amount' | 'currency';

/** Converts an amount in the major unit to hundredths, the precision the rendezvous payload carries. */
function toCents(amount: number): number {
  return Math.round(amount * 100);
}

/**
 * Compares verified claims with the purchase pinned at creation. Returns the
 * first field that differs, or undefined when the webhook confirms this
 * purchase. Amounts are compared in hundredths, the precision of an intent.
 */
export function checkClaimsAgainstPurchase(claims: WebhookClaims, purchase: PurchaseForClaims): ClaimsMismatch | undefined {
  if (claims.intent !== purchase.intentId) {
    return 'intent';
  }
  if (claims.destination !== purchase.destination) {
    return 'destination';
  }
  if (claims.currency.toLowerCase() !== purchase.currency.toLowerCase()) {
    return 'currency';
  }
  if (toCents(claims.amount) !== toCents(purchase.amount)) {
    return 'amount';
  }
  return undefined;
}

/** Claims for `signTestWebhook`: the payment fields, with the rest defaulted. Extra fields are signed as given. */
export interface TestWebhookClaims {
  intent: string;
  /** Any case; signed in upper case as Code sends it. */
  currency: string;
  amount: number;
  destination: string;
  exchangeRate?: number;
  quarks?: number | string;
  fees?: number | string;
  /** Default `SUBMITTED`. */
  state?: string;
  [claim: string]: unknown;
}

/** A signing key for test webhooks: a 32-byte Ed25519 seed or 64-byte secret key (bytes or base58), or a key object. */
export type TestWebhookPrivateKey = Uint8Array | string | CryptoKey | KeyObject;

async function importTestSigningKey(privateKey: TestWebhookPrivateKey): Promise<CryptoKey | KeyObject> {
  if (typeof privateKey !== 'string' && !(privateKey instanceof Uint8Array)) {
    return privateKey;
  }

  const bytes = typeof privateKey === 'string' ? bs58.decode(privateKey) : privateKey;
  if (bytes.length !== 32 && bytes.length !== 64) {
    throw new Error(`Invalid test webhook key: ${bytes.length} bytes; expected a 32-byte Ed25519 seed or a 64-byte secret key.`);
  }
  const seed = bytes.subarray(0, 32);
  const jwk: JWK = {
    ...publicKeyJwk(ed25519.getPublicKey(seed)),
    d: Buffer.from(seed).toString('base64url'),
  };
  return (await importJWK(jwk, 'EdDSA')) as CryptoKey;
}

/**
 * Signs claims the way Code signs a payment webhook (EdDSA compact JWS,
 * header `{ alg: 'EdDSA', typ: 'JWT' }`), so a game can test its webhook
 * route without the service. Pair it with `generateTestWebhookKeys()` and
 * configure the kit with the returned public key.
 */
export async function signTestWebhook(claims: TestWebhookClaims, privateKey: TestWebhookPrivateKey): Promise<string> {
  const payload = {
    exchangeRate: 1,
    quarks: Math.round(claims.amount * 100_000),
    fees: 0,
    state: 'SUBMITTED',
    ...claims,
    currency: claims.currency.toUpperCase(),
  };
  const key = await importTestSigningKey(privateKey);
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
    .sign(key);
}

/** Generates an Ed25519 key pair for test webhooks: `publicKey` in base58 for the kit, `privateKey` (the seed) in base58 for `signTestWebhook`. */
export function generateTestWebhookKeys(): { publicKey: string; privateKey: string } {
  const seed = ed25519.utils.randomPrivateKey();
  return { publicKey: bs58.encode(ed25519.getPublicKey(seed)), privateKey: bs58.encode(seed) };
}
