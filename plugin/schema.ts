// Schemas for everything the server sends, so a malformed payload is
// rejected with `invalid_response` before any of it is used. They use
// `zod/mini`, which tree-shakes far better than classic zod in a browser
// bundle.
import * as z from 'zod/mini';
import { ERROR_CODES, PURCHASE_KINDS, PURCHASE_STATES } from '../protocol/index.js';
import type { CatalogItem, Entitlements, ErrorBody, Purchase } from '../protocol/index.js';

const nonEmpty = () => z.string().check(z.minLength(1));
const purchaseKind = z.enum(PURCHASE_KINDS as [string, ...string[]]);
const purchaseState = z.enum(PURCHASE_STATES as [string, ...string[]]);

export const purchaseSchema = z.object({
  id: nonEmpty(),
  itemId: nonEmpty(),
  kind: purchaseKind,
  state: purchaseState,
  intentId: nonEmpty(),
  clientSecret: nonEmpty(),
  amount: z.number().check(z.positive()),
  currency: nonEmpty(),
  destination: nonEmpty(),
  attemptId: z.optional(z.string()),
  createdAt: z.number(),
  updatedAt: z.number(),
});

export const catalogItemSchema = z.object({
  id: nonEmpty(),
  kind: purchaseKind,
  name: z.string(),
  description: z.optional(z.string()),
  amount: z.number().check(z.positive()),
  currency: nonEmpty(),
});

const entitlementsSchema = z.record(z.string(), z.number().check(z.int(), z.nonnegative()));

const errorBodySchema = z.object({
  code: z.string(),
  message: z.string(),
});

const failedAckSchema = z.object({ ok: z.literal(false), error: errorBodySchema });

export const catalogAckSchema = z.discriminatedUnion('ok', [
  z.object({
    ok: z.literal(true),
    items: z.array(catalogItemSchema),
    streamUrl: z.optional(z.string()),
  }),
  failedAckSchema,
]);

export const purchaseAckSchema = z.discriminatedUnion('ok', [z.object({ ok: z.literal(true), purchase: purchaseSchema }), failedAckSchema]);

export const syncAckSchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), purchases: z.array(purchaseSchema), entitlements: entitlementsSchema }),
  failedAckSchema,
]);

/** Lists where a payload failed its schema, for example `purchase.amount: Invalid input`. */
export function describeIssues(error: z.core.$ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
}

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
