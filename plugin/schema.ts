// Schemas for everything the server sends, so a malformed payload is
// rejected with `invalid_response` before any of it is used.
import { z } from 'zod';
import { ERROR_CODES, PURCHASE_KINDS, PURCHASE_STATES } from '../protocol/index.js';
import type { CatalogItem, Entitlements, ErrorBody, Purchase } from '../protocol/index.js';

const purchaseKind = z.enum(PURCHASE_KINDS as [string, ...string[]]);
const purchaseState = z.enum(PURCHASE_STATES as [string, ...string[]]);

export const purchaseSchema = z.object({
  id: z.string().min(1),
  itemId: z.string().min(1),
  kind: purchaseKind,
  state: purchaseState,
  intentId: z.string().min(1),
  clientSecret: z.string().min(1),
  amount: z.number().positive(),
  currency: z.string().min(1),
  destination: z.string().min(1),
  attemptId: z.string().optional(),
  createdAt: z.number(),
  updatedAt: z.number(),
});

export const catalogItemSchema = z.object({
  id: z.string().min(1),
  kind: purchaseKind,
  name: z.string(),
  description: z.string().optional(),
  amount: z.number().positive(),
  currency: z.string().min(1),
});

const entitlementsSchema = z.record(z.string(), z.number().int().nonnegative());

const errorBodySchema = z.object({
  code: z.string(),
  message: z.string(),
});

const failedAckSchema = z.object({ ok: z.literal(false), error: errorBodySchema });

export const catalogAckSchema = z.union([
  z.object({
    ok: z.literal(true),
    items: z.array(catalogItemSchema),
    streamUrl: z.string().optional(),
  }),
  failedAckSchema,
]);

export const purchaseAckSchema = z.union([
  z.object({ ok: z.literal(true), purchase: purchaseSchema }),
  failedAckSchema,
]);

export const syncAckSchema = z.union([
  z.object({ ok: z.literal(true), purchases: z.array(purchaseSchema), entitlements: entitlementsSchema }),
  failedAckSchema,
]);

// The schemas use plain strings for the enums above, so these casts only
// narrow values the schemas already checked against the protocol's lists.
export function toPurchase(value: z.infer<typeof purchaseSchema>): Purchase {
  return value as Purchase;
}

export function toCatalogItem(value: z.infer<typeof catalogItemSchema>): CatalogItem {
  return value as CatalogItem;
}

export function toEntitlements(value: Record<string, number>): Entitlements {
  return { ...value };
}

/** Maps an error body from the server to a known code, using `internal` for codes this version does not know. */
export function toErrorBody(value: z.infer<typeof errorBodySchema>): ErrorBody {
  const known = (ERROR_CODES as readonly string[]).includes(value.code);
  return { code: known ? (value.code as ErrorBody['code']) : 'internal', message: value.message };
}
