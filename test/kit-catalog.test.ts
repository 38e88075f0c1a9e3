// Catalog and destination validation at start-up.
import { randomBytes } from 'node:crypto';

import bs58 from 'bs58';
import { describe, expect, it } from 'vitest';

import { CatalogConfigError, validateCatalog, validateDestination } from '../server/catalog.js';
import { ConfigError } from '../server/errors.js';

const sword = { id: 'sword', kind: 'permanent', name: 'Sword', amount: 0.25, currency: 'USD' };

/** Runs a validation that must fail and returns the error. */
function catalogError(items: unknown, sandbox = false): CatalogConfigError {
  let caught: unknown;
  try {
    validateCatalog(items, { sandbox });
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(CatalogConfigError);
  expect(caught).toBeInstanceOf(ConfigError);
  return caught as CatalogConfigError;
}

describe('validateCatalog', () => {
  it('normalizes a valid catalog', () => {
    const catalog = validateCatalog(
      [
        sword,
        { id: 'gems.100', kind: 'consumable', name: '  100 gems ', description: 'A pouch', amount: '0.5', currency: 'eur' },
        { id: 'crown', kind: 'unique', name: 'Crown', amount: 1, currency: 'usd' },
      ],
      { sandbox: false },
    );

    expect(catalog).toEqual([
      { id: 'sword', kind: 'permanent', name: 'Sword', amount: 0.25, currency: 'usd' },
      { id: 'gems.100', kind: 'consumable', name: '100 gems', description: 'A pouch', amount: 0.5, currency: 'eur' },
      { id: 'crown', kind: 'unique', name: 'Crown', amount: 1, currency: 'usd' },
    ]);
  });

  it('rejects a duplicate id', () => {
    const error = catalogError([sword, { ...sword, name: 'Other sword' }]);

    expect(error.problems).toHaveLength(1);
    expect(error.message).toContain('item "sword" appears more than once');
  });

  it('rejects invalid ids', () => {
    for (const id of ['', 'has space', 'x'.repeat(65), 'slash/id', 42]) {
      const error = catalogError([{ ...sword, id }]);

      expect(error.message, String(id)).toContain('invalid id');
    }
  });

  it('rejects an unknown kind', () => {
    const error = catalogError([{ ...sword, kind: 'subscription' }]);

    expect(error.message).toContain('item "sword" has invalid kind "subscription"');
    expect(error.message).toContain('unique, permanent, consumable');
  });

  it('rejects a missing name', () => {
    for (const name of [undefined, '', '   ', 7]) {
      const error = catalogError([{ ...sword, name }]);

      expect(error.message, String(name)).toContain('item "sword" is missing a name');
    }
  });

  it('rejects an amount over the limit', () => {
    const error = catalogError([{ ...sword, amount: 1.5 }]);

    expect(error.message).toContain('item "sword" has amount 1.5 usd');
    expect(error.message).toContain('usd currency has a maximum amount of 1.00');
    expect(error.message).toContain('from 0.05 to 1');
  });

  it('rejects an amount under the limit', () => {
    const error = catalogError([{ ...sword, amount: 0.01 }]);

    expect(error.message).toContain('usd currency has a minimum amount of 0.05');
  });

  it('uses each currency limit', () => {
    expect(validateCatalog([{ ...sword, amount: 90, currency: 'jpy' }], { sandbox: false })[0]!.amount).toBe(90);
    expect(catalogError([{ ...sword, amount: 0.5, currency: 'jpy' }]).message).toContain('jpy currency has a minimum amount of 5.00');
  });

  it('rejects more than two decimals', () => {
    for (const amount of [0.255, '0.255', 0.1 + 0.2]) {
      const error = catalogError([{ ...sword, amount }]);

      expect(error.message, String(amount)).toContain('at most two decimal places');
    }
  });

  it('rejects non-numeric amounts', () => {
    for (const amount of [undefined, null, Number.NaN, Number.POSITIVE_INFINITY, -0.25, '1e-1', { value: 1 }]) {
      const error = catalogError([{ ...sword, amount }]);

      expect(error.problems, String(amount)).toHaveLength(1);
      expect(error.message, String(amount)).toContain('item "sword" has');
    }
  });

  it('rejects unsupported currencies', () => {
    expect(catalogError([{ ...sword, currency: 'xyz' }]).message).toContain('does not accept');
    expect(catalogError([{ ...sword, currency: 'dollars' }]).message).toContain('three-letter code');
    // zwl has a sequencer limit but @code-wallet/intents cannot encode it.
    expect(catalogError([{ ...sword, amount: 20, currency: 'zwl' }]).message).toContain('@code-wallet/intents');
  });

  it('rejects unknown fields', () => {
    const error = catalogError([{ ...sword, prcie: 3 }]);

    expect(error.message).toContain('unknown field "prcie"');
  });

  it('lists every problem at once', () => {
    const error = catalogError([{ ...sword, kind: 'rare', amount: 3 }, { id: 'shield', kind: 'permanent', amount: 0.1, currency: 'usd' }, 'potion']);

    expect(error.problems).toHaveLength(4);
    expect(error.message).toContain('4 problems');
    expect(error.message).toContain('item at index 2 is "potion"');
  });

  it('rejects a catalog that is not an array', () => {
    expect(catalogError({ sword }).message).toContain('pass an array');
  });

  it('empty catalog only in the sandbox', () => {
    expect(catalogError([]).message).toContain('the catalog is empty');
    expect(validateCatalog([], { sandbox: true })).toEqual([]);
  });
});

describe('validateDestination', () => {
  it('accepts a 32-byte base58 key', () => {
    const address = bs58.encode(randomBytes(32));

    expect(validateDestination(address)).toBe(address);
    expect(validateDestination(` ${address} `)).toBe(address);
  });

  it('rejects invalid addresses', () => {
    const cases: [unknown, string][] = [
      [undefined, 'Missing option `destination`'],
      ['', 'Missing option `destination`'],
      ['0OIl', 'not base58'],
      [bs58.encode(randomBytes(31)), 'decodes to 31 bytes'],
      [bs58.encode(randomBytes(64)), 'decodes to 64 bytes'],
      [bs58.encode(new Uint8Array(32)), 'all-zero key'],
    ];
    for (const [value, expected] of cases) {
      expect(() => validateDestination(value), String(value)).toThrow(ConfigError);
      expect(() => validateDestination(value), String(value)).toThrow(expected);
    }
  });
});
