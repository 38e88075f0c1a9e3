// Rebuilds what the scan code and the message stream need from the three
// values the server sends: the client secret (base58 of the 11-byte nonce),
// the amount and the currency. The sheet loads this module lazily, because
// it pulls in the scan code encoder.
import bs58 from 'bs58';
import { ed25519 } from '@noble/curves/ed25519';
import { sha256 } from '@noble/hashes/sha256';
import type { Purchase } from '../../protocol/index.js';

export interface Rendezvous {
  /** The 20-byte `CodePayload` (kind, currency, amount in cents, nonce) that the scan code encodes. */
  payload: Uint8Array;
  /** Ed25519 seed of the rendezvous key: sha256 of the payload. */
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  /** Base58 public key; equals the purchase's intent id when the server and the plugin agree. */
  intentId: string;
}

export async function deriveRendezvous(purchase: Pick<Purchase, 'clientSecret' | 'amount' | 'currency'>): Promise<Rendezvous> {
  const { CodePayload, CodeKind } = await import('@code-wallet/kikcode');

  const nonce = bs58.decode(purchase.clientSecret);
  const codePayload = new CodePayload({
    kind: CodeKind.RequestPayment,
    amount: BigInt(toCents(purchase.amount)),
    nonce,
    currency: purchase.currency.toLowerCase() as never,
  });
  const payload = codePayload.toBinary();

  const privateKey = sha256(payload);
  const publicKey = ed25519.getPublicKey(privateKey);
  return { payload, privateKey, publicKey, intentId: bs58.encode(publicKey) };
}

/**
 * Converts an amount in the major unit to cents the way Code's SDK does:
 * round to two decimals first, so 0.29 becomes 29 and not 28.999….
 */
export function toCents(amount: number): number {
  const rounded = Number.parseFloat(amount.toFixed(2));
  return Number.parseInt((rounded * 100).toFixed(), 10);
}
