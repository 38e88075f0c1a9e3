// Payment intent derivation, byte-identical to `PaymentRequestIntent` of
// `@code-wallet/intents` 1.1 and `@code-wallet/kikcode` 1.0 but without their
// JavaScript Ed25519 and protobuf objects. With sodium-native a new purchase
// costs about 55 µs of CPU instead of about 0.75 ms (bench/intent-cpu.ts).
//
// The steps, as the SDK takes them:
// 1. nonce = first 11 bytes of SHA-256(UTF-8 idempotency key);
//    client secret = base58(nonce).
// 2. amount = parseFloat(amount.toFixed(2)); cents = parseInt((amount * 100).toFixed()).
// 3. rendezvous payload (20 bytes) = [kind 2 (RequestPayment), currency index,
//    cents as 7 bytes little-endian, nonce].
// 4. rendezvous seed = SHA-256(payload); the Ed25519 key pair of that seed is
//    the rendezvous key, and the intent id is base58(public key).
// 5. Message { RequestToReceiveBill { destination, exchange data } } signed
//    by the rendezvous key, sent as SendMessageRequest { message,
//    rendezvous key, signature }. The exchange data is `exact` for kin
//    (exchange rate 1, quarks = round(amount * 100000)) and `partial`
//    (currency and amount only) for every other currency.

import { hash } from 'node:crypto';

import { indexToCurrencyCode } from '@code-wallet/currency';
import bs58 from 'bs58';

import { CodePayError } from './errors.js';
import { ed25519 as defaultEd25519, type Ed25519Backend } from './ed25519.js';
import {
  type BillExchangeData,
  encodeOpenMessageStreamRequest,
  encodeRequestToReceiveBillMessage,
  encodeSendMessageRequest,
} from './proto-encode.js';

/** Scan-code kind `RequestPayment` from `@code-wallet/kikcode`. */
const CODE_KIND_REQUEST_PAYMENT = 2;
const NONCE_BYTES = 11;
const PAYLOAD_BYTES = 20;
const AMOUNT_BYTES = 7;
const PUBLIC_KEY_BYTES = 32;
const KIN_QUARKS_PER_KIN = 100_000;
const BASE58_PATTERN = /^[1-9A-HJ-NP-Za-km-z]+$/;

/**
 * Currency code → scan-code currency index. The table belongs to
 * `@code-wallet/currency`; it is read once here, so the kit stays in step
 * with the installed SDK.
 */
const CURRENCY_INDEX: ReadonlyMap<string, number> = readCurrencyIndex();

function readCurrencyIndex(): Map<string, number> {
  const index = new Map<string, number>();
  for (let i = 0; i < 256; i++) {
    try {
      index.set(indexToCurrencyCode(i), i);
    } catch {
      break;
    }
  }
  return index;
}

/** Lower-case currency codes that `@code-wallet/intents` accepts in a payment request. */
export const SDK_CURRENCIES: readonly string[] = Object.freeze([...CURRENCY_INDEX.keys()]);

/** The inputs of `paymentIntents.create` in `@code-wallet/client`. */
export interface IntentRequest {
  idempotencyKey: string;
  /** In the currency's major unit; rounded to two decimal places as the SDK does. */
  amount: number;
  /** Currency code in any case; lower-cased as the SDK does. */
  currency: string;
  /** Base58 address of the wallet that receives the payment. */
  destination: string;
}

/**
 * Everything Code derives from an intent request. `clientSecret` and the
 * rendezvous seed and secret key are secrets: never log this object whole.
 */
export interface DerivedIntent {
  idempotencyKey: string;
  /** The 11-byte nonce, SHA-256(idempotency key) truncated. */
  nonce: Uint8Array;
  /** base58 of the nonce. Send it only to the paying player's browser, and never log it. */
  clientSecret: string;
  /** Base58 rendezvous public key. */
  intentId: string;
  /** The amount after the SDK's rounding to two decimal places. */
  amount: number;
  /** The amount in hundredths of the currency's major unit, as in the rendezvous payload. */
  amountCents: number;
  /** Lower-case currency code. */
  currency: string;
  destination: string;
  /** The 20-byte scan-code payload whose SHA-256 is the rendezvous seed. */
  rendezvousPayload: Uint8Array;
  rendezvousSeed: Uint8Array;
  rendezvousPublicKey: Uint8Array;
  /** 64 bytes, seed then public key. */
  rendezvousSecretKey: Uint8Array;
  /** The encoded `Message` envelope with the RequestToReceiveBill, which is what the rendezvous key signs. */
  message: Uint8Array;
  /** Ed25519 signature of `message` by the rendezvous key. */
  signature: Uint8Array;
  /** The encoded `SendMessageRequest` that `paymentIntents.create` sends to the sequencer. */
  sendMessageRequest: Uint8Array;
}

export interface DeriveIntentOptions {
  /** The Ed25519 backend; by default the one selected when `server/ed25519.ts` loaded. */
  ed25519?: Ed25519Backend;
}

/**
 * Derives the client secret, intent id, rendezvous key pair and signed
 * `SendMessageRequest` of a payment intent, with the same bytes as
 * `new PaymentRequestIntent({ ...request, mode: 'payment' })` and its
 * `getSendMessageRequestProto()`.
 *
 * Throws a `CodePayError` with code `invalid_request` for every input the
 * SDK rejects, and also for inputs the SDK accepts but Code cannot honour:
 * - an empty idempotency key (the SDK silently uses a random nonce instead);
 * - an amount that is negative, not finite, or too large for a safe integer
 *   count of cents. The SDK encodes the two's complement of a negative amount.
 *   For amounts of 1e19 and more, `toFixed()` returns exponent notation that
 *   `parseInt` cuts short.
 * It does not check Code's per-currency limits; the catalog does that.
 */
export function deriveIntent(request: IntentRequest, options: DeriveIntentOptions = {}): DerivedIntent {
  const backend = options.ed25519 ?? defaultEd25519;

  const idempotencyKey = checkIdempotencyKey(request.idempotencyKey);
  const destinationBytes = decodeDestination(request.destination);
  const { amount, amountCents } = normalizeAmount(request.amount);
  const { currency, currencyIndex } = normalizeCurrency(request.currency);

  const nonce = sha256(Buffer.from(idempotencyKey, 'utf8')).subarray(0, NONCE_BYTES);
  const rendezvousPayload = encodeRendezvousPayload(currencyIndex, amountCents, nonce);
  const rendezvousSeed = sha256(rendezvousPayload);
  const keyPair = backend.keyPairFromSeed(rendezvousSeed);

  const message = encodeRequestToReceiveBillMessage(destinationBytes, exchangeData(currency, amount));
  const signature = backend.sign(message, keyPair.secretKey);
  const sendMessageRequest = encodeSendMessageRequest(message, keyPair.publicKey, signature);

  return {
    idempotencyKey,
    nonce,
    clientSecret: bs58.encode(nonce),
    intentId: bs58.encode(keyPair.publicKey),
    amount,
    amountCents,
    currency,
    destination: request.destination,
    rendezvousPayload,
    rendezvousSeed,
    rendezvousPublicKey: keyPair.publicKey,
    rendezvousSecretKey: keyPair.secretKey,
    message,
    signature,
    sendMessageRequest,
  };
}

/**
 * Encodes an `OpenMessageStreamRequest` for the intent's rendezvous key,
 * signed as Code's server verifies it: over the request bytes without the
 * signature field.
 */
export function signOpenMessageStreamRequest(
  intent: Pick<DerivedIntent, 'rendezvousPublicKey' | 'rendezvousSecretKey'>,
  options: DeriveIntentOptions = {},
): Uint8Array {
  const backend = options.ed25519 ?? defaultEd25519;
  const unsigned = encodeOpenMessageStreamRequest(intent.rendezvousPublicKey);
  const signature = backend.sign(unsigned, intent.rendezvousSecretKey);
  return encodeOpenMessageStreamRequest(intent.rendezvousPublicKey, signature);
}

function sha256(data: Uint8Array): Buffer {
  return hash('sha256', data, 'buffer');
}

function invalid(message: string): CodePayError {
  return new CodePayError('invalid_request', message);
}

function checkIdempotencyKey(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw invalid(
      'Invalid idempotency key: expected a non-empty string. (The Code SDK would pick a random nonce for an empty key, so retries would not find the intent.)',
    );
  }
  return value;
}

/**
 * Decoded destinations. A game has one destination or a few, and base58
 * decoding costs about 2 µs, so decoded addresses are kept.
 */
const decodedDestinations = new Map<string, Uint8Array>();
const DECODED_DESTINATIONS_MAX = 64;

/** Mirrors `PublicKey.fromBase58` of `@code-wallet/keys`: base58 alphabet, 32 bytes decoded. */
function decodeDestination(value: unknown): Uint8Array {
  if (typeof value === 'string') {
    const cached = decodedDestinations.get(value);
    if (cached !== undefined) {
      return cached;
    }
  }

  if (typeof value !== 'string' || value.length === 0) {
    throw invalid('Missing destination: expected the base58 address of the wallet that receives payments.');
  }
  if (!BASE58_PATTERN.test(value)) {
    throw invalid(`Invalid destination ${JSON.stringify(value)}: it contains characters outside the base58 alphabet.`);
  }
  const bytes = bs58.decode(value);
  if (bytes.length !== PUBLIC_KEY_BYTES) {
    throw invalid(
      `Invalid destination ${JSON.stringify(value)}: it decodes to ${bytes.length} bytes; a Code address is ${PUBLIC_KEY_BYTES}.`,
    );
  }

  if (decodedDestinations.size >= DECODED_DESTINATIONS_MAX) {
    decodedDestinations.clear();
  }
  decodedDestinations.set(value, bytes);
  return bytes;
}

/**
 * Rounds the amount the way `PaymentRequestIntent.init` does. The SDK's two
 * `toFixed` calls make 0.29 and 0.14 (28.999999999999996 and
 * 14.000000000000002 when multiplied by 100) encode as 29 and 14 cents.
 */
function normalizeAmount(value: unknown): { amount: number; amountCents: number } {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw invalid(`Invalid amount ${String(value)}: expected a finite number in the currency's major unit, such as 0.25.`);
  }

  const amount = Number.parseFloat(value.toFixed(2));
  if (amount < 0) {
    throw invalid(`Invalid amount ${value}: amounts must be positive.`);
  }
  if (amount === 0) {
    throw invalid(`Invalid amount ${value}: it rounds to 0.00 at two decimal places, and Code requires a positive amount.`);
  }

  const cents = amount * 100;
  if (!Number.isSafeInteger(Math.round(cents))) {
    throw invalid(`Invalid amount ${value}: it is too large to encode in a payment request.`);
  }
  const amountCents = Number.parseInt(cents.toFixed(), 10);

  return { amount, amountCents };
}

function normalizeCurrency(value: unknown): { currency: string; currencyIndex: number } {
  if (typeof value !== 'string' || value.length === 0) {
    throw invalid('Missing currency: expected a currency code such as "usd".');
  }

  const currency = value.toLowerCase();
  const currencyIndex = CURRENCY_INDEX.get(currency);
  if (currencyIndex === undefined) {
    throw invalid(`Invalid currency ${JSON.stringify(value)}: the Code SDK does not support it.`);
  }

  return { currency, currencyIndex };
}

function encodeRendezvousPayload(currencyIndex: number, amountCents: number, nonce: Uint8Array): Uint8Array {
  const payload = new Uint8Array(PAYLOAD_BYTES);
  payload[0] = CODE_KIND_REQUEST_PAYMENT;
  payload[1] = currencyIndex;

  let rest = amountCents;
  for (let i = 0; i < AMOUNT_BYTES; i++) {
    payload[2 + i] = rest % 256;
    rest = Math.floor(rest / 256);
  }

  payload.set(nonce, 2 + AMOUNT_BYTES);
  return payload;
}

function exchangeData(currency: string, amount: number): BillExchangeData {
  if (currency === 'kin') {
    // Kin.fromDecimal in @code-wallet/currency rounds the same way.
    const quarks = Math.round(amount * KIN_QUARKS_PER_KIN);
    if (!Number.isSafeInteger(quarks)) {
      throw invalid(`Invalid amount ${amount}: it is too many kin to encode in a payment request.`);
    }
    return { kind: 'exact', currency, exchangeRate: 1, nativeAmount: amount, quarks };
  }
  return { kind: 'partial', currency, nativeAmount: amount };
}
