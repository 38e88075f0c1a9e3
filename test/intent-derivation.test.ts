import { PaymentRequestIntent } from '@code-wallet/intents';
import * as proto from '@code-wallet/rpc';
import { ed25519 as nobleEd25519 } from '@noble/curves/ed25519';
import bs58 from 'bs58';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { MICRO_PAYMENT_LIMITS } from '../protocol/currency-limits.js';
import { CodePayError } from '../server/errors.js';
import { type Ed25519Backend, loadSodiumEd25519Backend, nobleEd25519Backend } from '../server/ed25519.js';
import { type DerivedIntent, type IntentRequest, SDK_CURRENCIES, deriveIntent, signOpenMessageStreamRequest } from '../server/intent.js';
import { deriveIdempotencyKey } from '../server/keys.js';
import { encodeOpenMessageStreamRequest, encodeSendMessageRequest } from '../server/proto-encode.js';

const DESTINATION = 'E8otxw1CVX9bfyddKu3ZB3BVLa4VVF9J7CTPdnUwT9jR';
const REQUEST: IntentRequest = { idempotencyKey: 'test_string', amount: 0.25, currency: 'usd', destination: DESTINATION };

// sodium-native is installed with the project, so its absence is a failure here.
const BACKENDS: Ed25519Backend[] = [loadSodiumEd25519Backend(), nobleEd25519Backend];

function hex(bytes: Uint8Array | undefined): string {
  return Buffer.from(bytes ?? new Uint8Array(0)).toString('hex');
}

/** Everything the SDK derives for a request, as hex and strings for exact comparison. */
async function deriveWithSdk(request: IntentRequest) {
  const intent = new PaymentRequestIntent({ ...request, mode: 'payment' } as never);
  const sendMessageRequest = await intent.getSendMessageRequestProto();

  return {
    nonce: hex(intent.nonce.value),
    clientSecret: intent.getClientSecret(),
    intentId: intent.getIntentId(),
    amount: intent.options.amount,
    amountCents: intent.convertedAmount,
    currency: intent.options.currency,
    rendezvousPayload: hex(intent.rendezvousPayload.toBinary()),
    rendezvousSeed: hex(intent.rendezvousKeypair.getPrivateValue()),
    rendezvousPublicKey: hex(intent.rendezvousKeypair.getPublicValue()),
    message: hex(sendMessageRequest.message?.toBinary()),
    signature: hex(sendMessageRequest.signature?.value),
    sendMessageRequest: hex(sendMessageRequest.toBinary()),
  };
}

function comparable(intent: DerivedIntent) {
  return {
    nonce: hex(intent.nonce),
    clientSecret: intent.clientSecret,
    intentId: intent.intentId,
    amount: intent.amount,
    amountCents: intent.amountCents,
    currency: intent.currency,
    rendezvousPayload: hex(intent.rendezvousPayload),
    rendezvousSeed: hex(intent.rendezvousSeed),
    rendezvousPublicKey: hex(intent.rendezvousPublicKey),
    message: hex(intent.message),
    signature: hex(intent.signature),
    sendMessageRequest: hex(intent.sendMessageRequest),
  };
}

function expectInvalidRequest(request: IntentRequest, messagePart: string): void {
  let caught: unknown;
  try {
    deriveIntent(request);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(CodePayError);
  expect((caught as CodePayError).code).toBe('invalid_request');
  expect((caught as CodePayError).message).toContain(messagePart);
}

describe('deriveIntent', () => {
  it('matches the known nonce vector', () => {
    const intent = deriveIntent(REQUEST);

    expect(hex(intent.nonce)).toBe('4b641e9a923d1ea57e18fe');
    expect(intent.clientSecret).toBe(bs58.encode(Buffer.from('4b641e9a923d1ea57e18fe', 'hex')));
  });

  it('matches the SDK on fixed cases', async () => {
    const cases: IntentRequest[] = [
      REQUEST,
      { ...REQUEST, amount: 0.29 },
      { ...REQUEST, amount: 0.14 },
      { ...REQUEST, amount: 1, currency: 'USD' },
      { ...REQUEST, amount: 0.05, currency: 'eur' },
      { ...REQUEST, amount: 99.99, currency: 'jpy' },
      { ...REQUEST, amount: 2500, currency: 'kin' },
      { ...REQUEST, amount: 12345.67, currency: 'KIN' },
      { ...REQUEST, amount: 0.015, currency: 'gbp' },
      { ...REQUEST, amount: 0.999, currency: 'cad' },
      { ...REQUEST, idempotencyKey: 'ключ-🗝️', amount: 0.5, currency: 'aud' },
    ];

    for (const request of cases) {
      const expected = await deriveWithSdk(request);
      for (const backend of BACKENDS) {
        expect(comparable(deriveIntent(request, { ed25519: backend }))).toEqual(expected);
      }
    }
  });

  it('rounds odd floats like the SDK', () => {
    expect(deriveIntent({ ...REQUEST, amount: 0.29 }).amountCents).toBe(29);
    expect(deriveIntent({ ...REQUEST, amount: 0.14 }).amountCents).toBe(14);
    expect(deriveIntent({ ...REQUEST, amount: 0.015 }).amount).toBe(0.01);
    expect(deriveIntent({ ...REQUEST, amount: 0.999 }).amountCents).toBe(100);
  });

  it('uses exact exchange data for kin only', () => {
    const kin = proto.Message.fromBinary(deriveIntent({ ...REQUEST, amount: 2500.5, currency: 'kin' }).message);
    const usd = proto.Message.fromBinary(deriveIntent(REQUEST).message);

    expect(kin.kind.case).toBe('requestToReceiveBill');
    const kinBill = kin.kind.value as proto.RequestToReceiveBill;
    expect(kinBill.exchangeData.case).toBe('exact');
    const exact = kinBill.exchangeData.value as proto.ExchangeData;
    expect(exact.currency).toBe('kin');
    expect(exact.exchangeRate).toBe(1);
    expect(exact.nativeAmount).toBe(2500.5);
    expect(exact.quarks).toBe(250_050_000n);

    const usdBill = usd.kind.value as proto.RequestToReceiveBill;
    expect(usdBill.exchangeData.case).toBe('partial');
    const partial = usdBill.exchangeData.value as proto.ExchangeDataWithoutRate;
    expect(partial.currency).toBe('usd');
    expect(partial.nativeAmount).toBe(0.25);
    expect(hex(usdBill.requestorAccount?.value)).toBe(hex(bs58.decode(DESTINATION)));
  });

  it('signs the message with the rendezvous key', () => {
    for (const backend of BACKENDS) {
      const intent = deriveIntent(REQUEST, { ed25519: backend });

      expect(nobleEd25519.verify(intent.signature, intent.message, intent.rendezvousPublicKey)).toBe(true);
      expect(backend.verify(intent.signature, intent.message, intent.rendezvousPublicKey)).toBe(true);
      expect(bs58.encode(intent.rendezvousPublicKey)).toBe(intent.intentId);
    }
  });

  it('leaves the destination out of the intent id', () => {
    const other = bs58.encode(new Uint8Array(32).fill(7));
    const first = deriveIntent(REQUEST);
    const second = deriveIntent({ ...REQUEST, destination: other });

    expect(second.intentId).toBe(first.intentId);
    expect(hex(second.sendMessageRequest)).not.toBe(hex(first.sendMessageRequest));
    expect(deriveIntent({ ...REQUEST, amount: 0.26 }).intentId).not.toBe(first.intentId);
    expect(deriveIntent({ ...REQUEST, currency: 'eur' }).intentId).not.toBe(first.intentId);
  });

  it(
    'matches the SDK on 10,000 random requests',
    async () => {
      const limitedCurrencies = Object.keys(MICRO_PAYMENT_LIMITS).filter((code) => SDK_CURRENCIES.includes(code));
      const unlimitedCurrencies = SDK_CURRENCIES.filter((code) => !Object.hasOwn(MICRO_PAYMENT_LIMITS, code));
      const oddFloats = fc.constantFrom(0.29, 0.14, 0.07, 0.57, 0.58, 1.005, 0.015, 0.285, 1.1, 2.675, 8.345, 0.1 + 0.2);

      // Half the samples use the currencies games are most likely to price in.
      const commonCurrencies = fc.constantFrom('usd', 'eur', 'cad', 'gbp', 'aud', 'jpy', 'kin');
      const limitedCurrency = fc.oneof(commonCurrencies, fc.constantFrom(...limitedCurrencies));
      const limitedAmount = limitedCurrency.chain((currency) => {
        const { min, max } = MICRO_PAYMENT_LIMITS[currency];
        const cents = fc.integer({ min: Math.round(min * 100), max: Math.round(max * 100) }).map((value) => value / 100);
        const floats = fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
        return fc.tuple(fc.constant(currency), fc.oneof(cents, floats, oddFloats));
      });
      const unlimitedAmount = fc.tuple(
        fc.constantFrom(...unlimitedCurrencies),
        fc.oneof(fc.integer({ min: 1, max: 100_000 }).map((value) => value / 100), oddFloats),
      );
      const currencyAndAmount = fc.oneof({ arbitrary: limitedAmount, weight: 9 }, { arbitrary: unlimitedAmount, weight: 1 });

      const derivedKey = fc
        .record({
          secret: fc.uint8Array({ minLength: 32, maxLength: 32 }),
          playerId: fc.string({ minLength: 1 }),
          attemptId: fc.string({ minLength: 1 }),
        })
        .map(({ secret, playerId, attemptId }) =>
          deriveIdempotencyKey(secret.some((byte) => byte !== 0) ? secret : new Uint8Array(32).fill(1), {
            gameId: 'game1',
            kind: 'consumable',
            itemId: 'gems',
            playerId,
            attemptId,
          }),
        );
      const idempotencyKey = fc.oneof(
        derivedKey,
        fc.string({ minLength: 1, unit: 'grapheme' }),
        fc.string({ minLength: 1, unit: 'binary' }),
      );

      const request = fc.record({
        idempotencyKey,
        currencyAndAmount,
        upperCase: fc.boolean(),
        destination: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => bs58.encode(bytes)),
      });

      let runs = 0;
      await fc.assert(
        fc.asyncProperty(request, async ({ idempotencyKey, currencyAndAmount, upperCase, destination }) => {
          const [currency, amount] = currencyAndAmount;
          const input: IntentRequest = {
            idempotencyKey,
            amount,
            currency: upperCase ? currency.toUpperCase() : currency,
            destination,
          };
          const expected = await deriveWithSdk(input);

          for (const backend of BACKENDS) {
            expect(comparable(deriveIntent(input, { ed25519: backend }))).toEqual(expected);
          }
          runs++;
        }),
        { numRuns: 10_000 },
      );

      expect(runs).toBe(10_000);
    },
    600_000,
  );
});

describe('deriveIntent validation', () => {
  it('rejects what the SDK rejects', () => {
    const cases: Array<[IntentRequest, string]> = [
      [{ ...REQUEST, amount: 0 }, 'rounds to 0.00'],
      [{ ...REQUEST, amount: 0.004 }, 'rounds to 0.00'],
      [{ ...REQUEST, amount: Number.NaN }, 'expected a finite number'],
      [{ ...REQUEST, amount: undefined as never }, 'expected a finite number'],
      [{ ...REQUEST, currency: 'xyz' }, 'Invalid currency "xyz"'],
      [{ ...REQUEST, currency: ' usd' }, 'Invalid currency " usd"'],
      [{ ...REQUEST, currency: undefined as never }, 'Missing currency'],
      [{ ...REQUEST, destination: undefined as never }, 'Missing destination'],
      [{ ...REQUEST, destination: DESTINATION.replace('E', '0') }, 'outside the base58 alphabet'],
      [{ ...REQUEST, destination: DESTINATION.slice(0, 20) }, 'decodes to'],
    ];

    for (const [request, messagePart] of cases) {
      expect(() => new PaymentRequestIntent({ ...request, mode: 'payment' } as never)).toThrow();
      expectInvalidRequest(request, messagePart);
    }
  });

  it('rejects currencies with limits the SDK lacks', () => {
    const unsupported = Object.keys(MICRO_PAYMENT_LIMITS).filter((code) => !SDK_CURRENCIES.includes(code));

    expect(unsupported.sort()).toEqual(['byr', 'clf', 'cuc', 'ggp', 'imp', 'jep', 'lsl', 'ltl', 'lvl', 'std', 'xdr', 'zmk', 'zwl']);
    for (const currency of unsupported) {
      expectInvalidRequest({ ...REQUEST, currency }, 'the Code SDK does not support it');
    }
  });

  it('rejects odd inputs the SDK accepts', () => {
    const cases: Array<[IntentRequest, string]> = [
      [{ ...REQUEST, amount: -0.5 }, 'amounts must be positive'],
      [{ ...REQUEST, amount: 1e19 }, 'too large to encode'],
      [{ ...REQUEST, amount: 1e11, currency: 'kin' }, 'too many kin'],
    ];

    for (const [request, messagePart] of cases) {
      expect(() => new PaymentRequestIntent({ ...request, mode: 'payment' } as never)).not.toThrow();
      expectInvalidRequest(request, messagePart);
    }

    // An empty key makes the SDK pick a random nonce, so two calls differ.
    const first = new PaymentRequestIntent({ ...REQUEST, idempotencyKey: '', mode: 'payment' } as never);
    const second = new PaymentRequestIntent({ ...REQUEST, idempotencyKey: '', mode: 'payment' } as never);
    expect(first.getIntentId()).not.toBe(second.getIntentId());
    expectInvalidRequest({ ...REQUEST, idempotencyKey: '' }, 'non-empty string');
  });
});

describe('signOpenMessageStreamRequest', () => {
  it('signs the request without its signature', () => {
    for (const backend of BACKENDS) {
      const intent = deriveIntent(REQUEST, { ed25519: backend });
      const request = proto.OpenMessageStreamRequest.fromBinary(signOpenMessageStreamRequest(intent, { ed25519: backend }));
      const unsigned = new proto.OpenMessageStreamRequest({ rendezvousKey: request.rendezvousKey }).toBinary();

      expect(hex(request.rendezvousKey?.value)).toBe(hex(intent.rendezvousPublicKey));
      expect(nobleEd25519.verify(request.signature?.value ?? new Uint8Array(64), unsigned, intent.rendezvousPublicKey)).toBe(
        true,
      );
      expect(hex(new proto.OpenMessageStreamRequest(request).toBinary())).toBe(
        hex(signOpenMessageStreamRequest(intent, { ed25519: backend })),
      );
    }
  });
});

describe('Ed25519 backend selection', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  async function loadWith(value: string | undefined) {
    vi.resetModules();
    vi.stubEnv('CODE_PAY_ED25519', value);
    return import('../server/ed25519.js');
  }

  it('prefers sodium-native by default', async () => {
    const module = await loadWith(undefined);

    expect(module.ed25519Selection).toEqual({ backend: 'sodium-native', requested: 'auto' });
    expect(module.ed25519.name).toBe('sodium-native');
  });

  it('forces the JavaScript backend', async () => {
    const module = await loadWith('js');

    expect(module.ed25519Selection.backend).toBe('noble');
    expect(module.ed25519Selection.fallbackReason).toBe('CODE_PAY_ED25519=js');
    expect(module.ed25519.name).toBe('noble');
  });

  it('requires sodium-native when asked', async () => {
    const module = await loadWith('native');

    expect(module.ed25519.name).toBe('sodium-native');
  });

  it('rejects unknown values', async () => {
    // A fresh module graph has its own ConfigError class, so compare by name.
    await expect(loadWith('wasm')).rejects.toMatchObject({ name: 'ConfigError' });
    await expect(loadWith('wasm')).rejects.toThrow('Invalid CODE_PAY_ED25519 value "wasm"');
  });

  it('derives the same intents when forced', async () => {
    await loadWith('js');
    const { deriveIntent: deriveWithJs } = await import('../server/intent.js');

    expect(comparable(deriveWithJs(REQUEST))).toEqual(comparable(deriveIntent(REQUEST)));
  });
});

describe('proto-encode', () => {
  it('matches bufbuild for long fields', () => {
    for (const size of [0, 1, 127, 128, 200, 16_384, 20_000]) {
      const value = new Uint8Array(size).map((_, i) => i % 251);
      const expectedStream = new proto.OpenMessageStreamRequest({
        rendezvousKey: { value },
        signature: { value: value.slice().reverse() },
      }).toBinary();
      const expectedSend = new proto.SendMessageRequest({
        message: proto.Message.fromBinary(deriveIntent(REQUEST).message),
        rendezvousKey: { value },
        signature: { value },
      }).toBinary();

      expect(hex(encodeOpenMessageStreamRequest(value, value.slice().reverse()))).toBe(hex(expectedStream));
      expect(hex(encodeSendMessageRequest(deriveIntent(REQUEST).message, value, value))).toBe(hex(expectedSend));
    }
  });
});
