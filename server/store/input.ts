// Schemas for what callers pass to the purchase store. The store checks every
// input before it opens a transaction, so bad input throws `invalid_request`
// and writes nothing.

import { z } from 'zod';
import { PURCHASE_KINDS, PURCHASE_STATES } from '../../protocol/index.js';
import { CodePayError } from '../errors.js';
import type { NewPurchase, PaymentReview, TransitionRequest, TransitionSource } from './types.js';

const TRANSITION_SOURCES: readonly TransitionSource[] = ['create', 'webhook', 'poll', 'revalidate', 'reconcile', 'grant', 'expire', 'stream'];

/** Maximum length of free text the store keeps (transition details, grant errors). Longer text is truncated. */
export const MAX_TEXT_LENGTH = 2_000;

const id = z.string().min(1).max(200);
const timestamp = z.number().int().nonnegative();

export const newPurchaseSchema = z.object({
  id,
  idempotencyKey: id,
  playerId: id,
  itemId: id,
  kind: z.enum(PURCHASE_KINDS as [string, ...string[]]),
  intentId: id,
  clientSecret: id,
  amount: z.number().positive(),
  currency: z.string().min(1).max(16),
  destination: id,
  attemptId: id.optional(),
  createdAt: timestamp,
  nextCheckAt: timestamp,
});

export const transitionRequestSchema = z
  .object({
    purchaseId: id,
    to: z.enum(PURCHASE_STATES as [string, ...string[]]),
    source: z.enum(TRANSITION_SOURCES as [string, ...string[]]),
    detail: z.string().optional(),
    at: timestamp,
    failureReason: z.string().min(1).max(200).optional(),
  })
  .refine((request) => request.to !== 'failed' || request.failureReason !== undefined, {
    message: 'failureReason is required when `to` is "failed"',
    path: ['failureReason'],
  })
  .refine((request) => request.to === 'failed' || request.failureReason === undefined, {
    message: 'failureReason is only allowed when `to` is "failed"',
    path: ['failureReason'],
  });

export const reviewSchema = z.object({
  kind: z.enum(['unknown_intent', 'conflicting_payment']),
  intentId: id,
  purchaseId: id.nullable(),
  payload: z.string(),
  createdAt: timestamp,
});

export const holdSchema = z
  .object({ itemId: id, playerId: id, now: timestamp, expiresAt: timestamp })
  .refine((hold) => hold.expiresAt > hold.now, { message: 'expiresAt must be later than now', path: ['expiresAt'] });

export const pageLimit = z.number().int().min(1).max(10_000);

/**
 * Parses `value` with `schema`, or throws `invalid_request` that names the
 * store method and every problem found.
 */
export function parseInput<Output>(schema: z.ZodType<Output>, value: unknown, method: string): Output {
  const result = schema.safeParse(value);
  if (result.success) {
    return result.data;
  }

  const problems = result.error.issues.map((issue) => {
    const path = issue.path.join('.');
    return path === '' ? issue.message : `${path}: ${issue.message}`;
  });
  throw new CodePayError('invalid_request', `Invalid input to store.${method}(): ${problems.join('; ')}.`);
}

export function parseNewPurchase(value: unknown): NewPurchase {
  return parseInput(newPurchaseSchema, value, 'insertPurchase') as NewPurchase;
}

export function parseTransitionRequest(value: unknown): TransitionRequest {
  return parseInput(transitionRequestSchema, value, 'transition') as TransitionRequest;
}

export function parseReview(value: unknown): Omit<PaymentReview, 'id'> {
  return parseInput(reviewSchema, value, 'recordReview');
}

/** Cuts free text to the length the store keeps. */
export function truncateText(text: string): string {
  return text.length <= MAX_TEXT_LENGTH ? text : `${text.slice(0, MAX_TEXT_LENGTH - 1)}…`;
}
