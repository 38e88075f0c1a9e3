// Guest identities: a random player id in an HS256 JWT that the game keeps in
// localStorage and sends as the socket handshake `auth.token` and as a bearer
// token on the game's HTTP routes.

import { randomUUID } from 'node:crypto';
import path from 'node:path';

import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import { z } from 'zod';

import { TOKEN_SECRET_FILE, readOrCreateSecretFile } from './secrets.js';

const ISSUER = 'phaser-code-pay-sample-game';
const AUDIENCE = 'phaser-code-pay-sample-game';

/** Guest tokens last a year, so a returning player keeps their items. */
const TOKEN_LIFETIME = '365d';

/** Player ids are `guest_` and a UUID; anything else in a token is rejected. */
export const PLAYER_ID_PATTERN = /^guest_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const claimsSchema = z.object({
  sub: z.string().regex(PLAYER_ID_PATTERN),
});

/** A token that failed verification; `reason` is safe to log, the token is not. */
export class GuestTokenError extends Error {
  readonly reason: string;

  constructor(reason: string) {
    super(`Invalid guest token: ${reason}. Request a new one with POST /api/guest.`);
    this.name = 'GuestTokenError';
    this.reason = reason;
  }
}

export interface GuestIdentity {
  playerId: string;
  token: string;
}

export interface GuestAuthority {
  issue(): Promise<GuestIdentity>;
  /** Returns the player id of a valid token; throws `GuestTokenError` otherwise. */
  verify(token: unknown): Promise<string>;
}

export function createGuestAuthority(secret: Uint8Array): GuestAuthority {
  return {
    async issue() {
      const playerId = `guest_${randomUUID()}`;
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(playerId)
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(TOKEN_LIFETIME)
        .sign(secret);
      return { playerId, token };
    },

    async verify(token) {
      if (typeof token !== 'string' || token.length === 0) {
        throw new GuestTokenError('missing');
      }
      if (token.length > 2048) {
        throw new GuestTokenError('longer than 2048 characters');
      }

      let payload: unknown;
      try {
        ({ payload } = await jwtVerify(token, secret, {
          algorithms: ['HS256'],
          issuer: ISSUER,
          audience: AUDIENCE,
        }));
      } catch (error) {
        throw new GuestTokenError(describeJoseError(error));
      }

      const claims = claimsSchema.safeParse(payload);
      if (!claims.success) {
        throw new GuestTokenError('its subject is not a guest player id');
      }
      return claims.data.sub;
    },
  };
}

/**
 * Returns the token signing secret: `configured` when set, otherwise the one
 * stored in `dataDirectory`, so tokens stay valid across restarts.
 */
export async function loadTokenSecret(configured: string | undefined, dataDirectory: string): Promise<Uint8Array> {
  const secret = configured ?? (await readOrCreateSecretFile(path.join(dataDirectory, TOKEN_SECRET_FILE)));
  return new TextEncoder().encode(secret);
}

function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) {
    return 'expired';
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
    return 'signature does not match';
  }
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return `claim ${error.claim} is invalid`;
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) {
    return 'algorithm is not HS256';
  }
  if (error instanceof joseErrors.JWSInvalid || error instanceof joseErrors.JWTInvalid) {
    return 'malformed';
  }
  return 'verification failed';
}
