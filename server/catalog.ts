// Start-up validation of the game's catalog and destination wallet. Every
// problem becomes a ConfigError that names the item, the value and the fix, so
// a mistake stops the server at start-up instead of failing a player's
// purchase at the sequencer.
import bs58 from 'bs58';

import { checkMicroPaymentAmount, microPaymentLimit } from '../protocol/currency-limits.js';
import { ITEM_ID_PATTERN, PURCHASE_KINDS, type CatalogItem, type PurchaseKind } from '../protocol/index.js';
import { ConfigError } from './errors.js';
import { SDK_CURRENCIES } from './intent.js';

/** Maximum item name length; the payment sheet shows the name next to the scan code. */
export const MAX_ITEM_NAME_LENGTH = 100;
/** Maximum item description length. */
export const MAX_ITEM_DESCRIPTION_LENGTH = 1000;
/** Maximum number of items in one catalog; the whole catalog travels in each `catalog` acknowledgement. */
export const MAX_CATALOG_ITEMS = 1000;

const ITEM_FIELDS = new Set(['id', 'kind', 'name', 'description', 'amount', 'currency']);

export interface CatalogValidationOptions {
  /** True against a sandbox sequencer: an empty catalog is then accepted. */
  sandbox: boolean;
}

/** A catalog that failed validation; `problems` lists every problem, one sentence each. */
export class CatalogConfigError extends ConfigError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    const heading = problems.length === 1 ? 'Invalid catalog:' : `Invalid catalog (${problems.length} problems):`;
    super([heading, ...problems.map((problem) => `- ${problem}`)].join('\n'));
    this.name = 'CatalogConfigError';
    this.problems = problems;
  }
}

function describe(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) {
    return String(value);
  }
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Parses an amount given as a number or a decimal string into a number of the
 * major unit with at most two decimal places. Returns an error sentence for
 * anything else, because the intent's amount is in hundredths and the SDK
 * would silently round a third decimal.
 */
function parseAmount(value: unknown): number | string {
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      return `amount ${describe(value)} is not a finite number`;
    }
    text = String(value);
  } else if (typeof value === 'string') {
    text = value.trim();
  } else {
    return `amount ${describe(value)} is not a number; write it in the currency's major unit, for example 0.25`;
  }

  if (!/^\d+(\.\d{1,2})?$/.test(text)) {
    return `amount ${describe(value)} must be a positive decimal with at most two decimal places, for example 0.25`;
  }
  return Number(text);
}

/** Validates one item; returns the normalized item, or pushes its problems and returns undefined. */
function validateItem(raw: unknown, index: number, seenIds: Set<string>, problems: string[]): CatalogItem | undefined {
  if (!isRecord(raw)) {
    problems.push(`item at index ${index} is ${describe(raw)}; each item is an object { id, kind, name, amount, currency }.`);
    return undefined;
  }

  const label = typeof raw.id === 'string' && raw.id.length > 0 ? `item ${JSON.stringify(raw.id)}` : `item at index ${index}`;
  const before = problems.length;

  for (const field of Object.keys(raw)) {
    if (!ITEM_FIELDS.has(field)) {
      problems.push(`${label} has unknown field ${JSON.stringify(field)}; the fields are ${[...ITEM_FIELDS].join(', ')}. Check the spelling.`);
    }
  }

  const id = raw.id;
  if (typeof id !== 'string' || !ITEM_ID_PATTERN.test(id)) {
    problems.push(`${label} has invalid id ${describe(id)}; use 1 to 64 letters, digits, '.', '-' or '_'.`);
  } else if (seenIds.has(id)) {
    problems.push(`${label} appears more than once; item ids must be unique, so rename one of them.`);
  } else {
    seenIds.add(id);
  }

  const kind = raw.kind;
  if (typeof kind !== 'string' || !PURCHASE_KINDS.includes(kind as PurchaseKind)) {
    problems.push(`${label} has invalid kind ${describe(kind)}; use one of ${PURCHASE_KINDS.join(', ')}.`);
  }

  const name = typeof raw.name === 'string' ? raw.name.trim() : undefined;
  if (name === undefined || name.length === 0) {
    problems.push(`${label} is missing a name; set name to the text players see, for example "Golden sword".`);
  } else if (name.length > MAX_ITEM_NAME_LENGTH) {
    problems.push(`${label} has a name of ${name.length} characters; shorten it to at most ${MAX_ITEM_NAME_LENGTH}.`);
  }

  const description = raw.description;
  if (description !== undefined && (typeof description !== 'string' || description.length > MAX_ITEM_DESCRIPTION_LENGTH)) {
    problems.push(`${label} has an invalid description; use a string of at most ${MAX_ITEM_DESCRIPTION_LENGTH} characters or leave it out.`);
  }

  const currency = typeof raw.currency === 'string' ? raw.currency.trim().toLowerCase() : undefined;
  const currencyProblem = checkCurrency(currency, raw.currency);
  if (currencyProblem !== undefined) {
    problems.push(`${label} ${currencyProblem}`);
  }

  const amount = parseAmount(raw.amount);
  if (typeof amount === 'string') {
    problems.push(`${label} has ${amount}.`);
  } else if (currency !== undefined && currencyProblem === undefined) {
    const limitProblem = checkMicroPaymentAmount(currency, amount);
    if (limitProblem !== undefined) {
      const limit = microPaymentLimit(currency)!;
      problems.push(
        `${label} has amount ${amount} ${currency}, outside Code's limits (${limitProblem}); set an amount from ${limit.min} to ${limit.max}.`,
      );
    }
  }

  if (problems.length > before) {
    return undefined;
  }

  const item: CatalogItem = { id: id as string, kind: kind as PurchaseKind, name: name!, amount: amount as number, currency: currency! };
  if (typeof description === 'string' && description.length > 0) {
    item.description = description;
  }
  return item;
}

/** Returns why a currency cannot be used, or undefined when both Code's sequencer and the SDK accept it. */
function checkCurrency(currency: string | undefined, raw: unknown): string | undefined {
  if (currency === undefined || !/^[a-z]{3}$/.test(currency)) {
    return `has invalid currency ${describe(raw)}; use a three-letter code such as "usd".`;
  }
  if (microPaymentLimit(currency) === undefined) {
    return `has currency ${JSON.stringify(currency)}, which Code's sequencer does not accept for payments; use a supported currency such as "usd" or "eur".`;
  }
  if (!SDK_CURRENCIES.includes(currency)) {
    return `has currency ${JSON.stringify(currency)}, which @code-wallet/intents cannot encode in a payment request; use a supported currency such as "usd" or "eur".`;
  }
  return undefined;
}

/**
 * Validates the game's catalog and returns it normalized: lower-case
 * currency codes, trimmed names and amounts as numbers with at most two
 * decimal places. Throws a `CatalogConfigError` (a `ConfigError`) that lists
 * every problem with the item, the value and the fix.
 */
export function validateCatalog(items: unknown, options: CatalogValidationOptions): CatalogItem[] {
  if (!Array.isArray(items)) {
    throw new CatalogConfigError([`the catalog is ${describe(items)}; pass an array of items { id, kind, name, amount, currency }.`]);
  }
  if (items.length === 0 && !options.sandbox) {
    throw new CatalogConfigError(['the catalog is empty; add at least one item, because players cannot buy anything otherwise.']);
  }
  if (items.length > MAX_CATALOG_ITEMS) {
    throw new CatalogConfigError([`the catalog has ${items.length} items; at most ${MAX_CATALOG_ITEMS} are supported.`]);
  }

  const problems: string[] = [];
  const seenIds = new Set<string>();
  const catalog: CatalogItem[] = [];
  items.forEach((raw, index) => {
    const item = validateItem(raw, index, seenIds, problems);
    if (item !== undefined) {
      catalog.push(item);
    }
  });

  if (problems.length > 0) {
    throw new CatalogConfigError(problems);
  }
  return catalog;
}

/**
 * Validates the destination wallet: the base58 form of a 32-byte public key,
 * as `@code-wallet/keys` `PublicKey.fromBase58` reads it. The key is not
 * required to be on the Ed25519 curve, because Code deposit addresses can be
 * program-derived addresses, which are off the curve. Returns the address;
 * throws `ConfigError` naming the value and the fix.
 */
export function validateDestination(destination: unknown): string {
  const fix = 'set destination to the base58 address (a 32-byte public key) of the Code wallet that receives payments.';
  if (typeof destination !== 'string' || destination.trim().length === 0) {
    throw new ConfigError(`Missing option \`destination\`: ${fix}`);
  }

  const address = destination.trim();
  let bytes: Uint8Array;
  try {
    bytes = bs58.decode(address);
  } catch {
    throw new ConfigError(`Invalid option \`destination\` ${JSON.stringify(address)}: not base58 (it contains 0, O, I, l or another character outside the base58 alphabet); ${fix}`);
  }
  if (bytes.length !== 32) {
    throw new ConfigError(`Invalid option \`destination\` ${JSON.stringify(address)}: decodes to ${bytes.length} bytes instead of 32; ${fix}`);
  }
  if (bytes.every((byte) => byte === 0)) {
    throw new ConfigError(`Invalid option \`destination\` ${JSON.stringify(address)}: the all-zero key is the system program, not a wallet; ${fix}`);
  }
  return address;
}
