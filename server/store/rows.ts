// Conversion between the purchase store's table rows and the contract's
// objects. PostgreSQL returns BIGINT columns as strings, so every number is
// read through `Number()`; SQLite returns numbers already.

import type { PurchaseKind } from '../../protocol/index.js';
import { PURCHASE_KINDS } from '../../protocol/index.js';
import { CodePayError } from '../errors.js';
import { parsePurchaseState } from '../purchase-state.js';
import type { PaymentReview, ReviewKind, StoredPurchase, TransitionLogEntry, TransitionSource } from './types.js';

export interface PurchaseRow extends Record<string, unknown> {
  id: string;
  idempotency_key: string;
  player_id: string;
  item_id: string;
  kind: string;
  state: string;
  intent_id: string;
  client_secret: string;
  amount: number | string;
  currency: string;
  destination: string;
  attempt_id: string | null;
  created_at: number | string;
  updated_at: number | string;
  next_check_at: number | string | null;
  check_attempts: number | string;
  next_grant_at: number | string | null;
  grant_attempts: number | string;
  last_grant_error: string | null;
  paid_at: number | string | null;
  granted_at: number | string | null;
  failure_reason: string | null;
}

export interface TransitionRow extends Record<string, unknown> {
  purchase_id: string;
  from_state: string | null;
  to_state: string;
  source: string;
  detail: string | null;
  at: number | string;
}

export interface ReviewRow extends Record<string, unknown> {
  id: number | string;
  kind: string;
  intent_id: string;
  purchase_id: string | null;
  payload: string;
  created_at: number | string;
}

function toNumberOrNull(value: number | string | null): number | null {
  return value === null ? null : Number(value);
}

function toKind(value: string): PurchaseKind {
  if (!(PURCHASE_KINDS as readonly string[]).includes(value)) {
    throw new CodePayError('internal', `Invalid purchase kind ${JSON.stringify(value)} in the purchase store; was the database changed outside the kit?`);
  }
  return value as PurchaseKind;
}

export function toStoredPurchase(row: PurchaseRow): StoredPurchase {
  const purchase: StoredPurchase = {
    id: row.id,
    itemId: row.item_id,
    kind: toKind(row.kind),
    state: parsePurchaseState(row.state),
    intentId: row.intent_id,
    clientSecret: row.client_secret,
    amount: Number(row.amount),
    currency: row.currency,
    destination: row.destination,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    playerId: row.player_id,
    idempotencyKey: row.idempotency_key,
    nextCheckAt: toNumberOrNull(row.next_check_at),
    checkAttempts: Number(row.check_attempts),
    nextGrantAt: toNumberOrNull(row.next_grant_at),
    grantAttempts: Number(row.grant_attempts),
    lastGrantError: row.last_grant_error,
    paidAt: toNumberOrNull(row.paid_at),
    grantedAt: toNumberOrNull(row.granted_at),
    failureReason: row.failure_reason,
  };
  if (row.attempt_id !== null) {
    purchase.attemptId = row.attempt_id;
  }
  return purchase;
}

export function toTransitionLogEntry(row: TransitionRow): TransitionLogEntry {
  return {
    purchaseId: row.purchase_id,
    from: row.from_state === null ? null : parsePurchaseState(row.from_state),
    to: parsePurchaseState(row.to_state),
    source: row.source as TransitionSource,
    detail: row.detail,
    at: Number(row.at),
  };
}

export function toPaymentReview(row: ReviewRow): PaymentReview {
  return {
    id: Number(row.id),
    kind: row.kind as ReviewKind,
    intentId: row.intent_id,
    purchaseId: row.purchase_id,
    payload: row.payload,
    createdAt: Number(row.created_at),
  };
}
