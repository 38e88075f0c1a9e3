import { describe, expect, it } from 'vitest';
import bs58 from 'bs58';
import { PaymentRequestIntent } from '@code-wallet/intents';
import { deriveRendezvous, toCents } from '../plugin/sheet/rendezvous.js';

// The plugin rebuilds the rendezvous key without `@code-wallet/intents`, so
// these tests compare it with that package, Code's own implementation.
describe('deriveRendezvous', () => {
  const destination = 'E8otxw1CVX9bfyddKu3ZB3BVLa4VVF9J7CTPdnUwT9jR';

  for (const [amount, currency] of [
    [0.25, 'usd'],
    [0.29, 'usd'],
    [1, 'usd'],
    [0.05, 'eur'],
  ] as const) {
    it(`matches the SDK for ${amount} ${currency}`, async () => {
      const clientSecret = bs58.encode(Uint8Array.from({ length: 11 }, (_, index) => index * 23 + 7));
      const intent = new PaymentRequestIntent({ mode: 'payment', destination, amount, currency, clientSecret } as never);

      const derived = await deriveRendezvous({ clientSecret, amount, currency });

      expect(derived.intentId).toBe(intent.getIntentId());
      expect(Array.from(derived.payload)).toEqual(Array.from(intent.rendezvousPayload.toBinary()));
    });
  }

  it('rounds amounts to cents like the SDK', () => {
    expect(toCents(0.29)).toBe(29);
    expect(toCents(0.14)).toBe(14);
    expect(toCents(1)).toBe(100);
  });
});
