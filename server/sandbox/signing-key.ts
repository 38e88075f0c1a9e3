// The sandbox's webhook signing key: an Ed25519 key pair created on first
// start and stored in the data file, so a restart keeps the published key.
import { ed25519 } from '@noble/curves/ed25519';
import bs58 from 'bs58';
import { importJWK, SignJWT, type JWTPayload } from 'jose';
import type { SandboxStore } from './store.js';

const SIGNING_KEY_META = 'webhook_signing_seed';

export class WebhookSigner {
  /** Base58 Ed25519 public key, in the form Code publishes its own key. */
  readonly publicKey: string;
  /** The public key as a JWK, for `jose.importJWK(jwk, 'EdDSA')`. */
  readonly publicJwk: { kty: 'OKP'; crv: 'Ed25519'; x: string };
  private readonly privateKey: Promise<CryptoKey | Uint8Array>;

  private constructor(seed: Uint8Array) {
    const publicKeyBytes = ed25519.getPublicKey(seed);
    this.publicKey = bs58.encode(publicKeyBytes);
    this.publicJwk = { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKeyBytes).toString('base64url') };
    this.privateKey = importJWK({ ...this.publicJwk, d: Buffer.from(seed).toString('base64url') }, 'EdDSA');
  }

  /** Loads the key from the store, creating and storing one on first use. */
  static load(store: SandboxStore): WebhookSigner {
    const stored = store.getMeta(SIGNING_KEY_META);
    if (stored !== undefined) {
      return new WebhookSigner(Buffer.from(stored, 'hex'));
    }

    const seed = ed25519.utils.randomSecretKey();
    store.setMeta(SIGNING_KEY_META, Buffer.from(seed).toString('hex'));
    return new WebhookSigner(seed);
  }

  /** Signs the claims as a compact JWS with alg EdDSA and no exp or iat claim, as Code does. */
  async sign(claims: JWTPayload): Promise<string> {
    const key = await this.privateKey;
    return new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(key);
  }
}
