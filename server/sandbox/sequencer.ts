// The sandbox sequencer's rules: the RequestToReceiveBill checks of
// `Messaging.SendMessage`, `MicroPayment.GetStatus`,
// `MicroPayment.RegisterWebhook`, and the simulated wallet's scan, pay and
// reject actions. The checks and their wording follow code-server's
// pkg/code/server/messaging/message_handler.go and
// pkg/code/server/micropayment/server.go (commit 97e549c).
import * as proto from '@code-wallet/rpc';
import { ed25519 } from '@noble/curves/ed25519';
import bs58 from 'bs58';
import type { Logger } from 'pino';
import { checkMicroPaymentAmount } from '../../protocol/currency-limits.js';
import {
  SandboxWalletError,
  type SandboxContext,
  type SandboxIntent,
  type SandboxIntentEvent,
  type SandboxIntentStatus,
} from './context.js';
import type { LedgerEntry, SandboxStore, StoredFee, StoredIntent } from './store.js';
import type { WebhookDispatcher } from './webhooks.js';

/** The currency that takes exact exchange data (Code's core mint). */
const CORE_MINT_CURRENCY = 'kin';

/** Code's default cap on the sum of fee takers' basis points (MAX_FEE_BASIS_POINTS). */
const MAX_FEE_BASIS_POINTS = 5000;

const PUBLIC_KEY_LENGTH = 32;
const SIGNATURE_LENGTH = 64;

/** A gRPC status code name, as code-server returns it for a rejected call. */
export type RpcStatusCode = 'InvalidArgument' | 'Unauthenticated' | 'Unimplemented' | 'Internal';

/** A rejected RPC; the HTTP layer turns it into an ERROR envelope. */
export class RpcError extends Error {
  readonly status: RpcStatusCode;

  constructor(status: RpcStatusCode, message: string) {
    super(message);
    this.name = 'RpcError';
    this.status = status;
  }
}

function invalidArgument(message: string): RpcError {
  return new RpcError('InvalidArgument', message);
}

/** Reads a 32-byte Ed25519 public key field, or throws InvalidArgument naming the field. */
function requirePublicKey(value: Uint8Array | undefined, field: string): string {
  if (value === undefined || value.length !== PUBLIC_KEY_LENGTH) {
    throw invalidArgument(`${field} must be a ${PUBLIC_KEY_LENGTH}-byte public key`);
  }
  return bs58.encode(value);
}

/** The payment request fields that a repeat of the request must match. */
interface ParsedBillRequest {
  destination: string;
  currency: string;
  amount: number;
  exchangeRate?: number;
  quarks?: string;
  fees: StoredFee[];
  domain?: string;
}

/**
 * Validates a webhook URL the way code-server's `netutil.ValidateHttpUrl`
 * does: a missing scheme defaults to http, the scheme must be http or https,
 * and the host must parse as a URL host of at most 253 characters. Returns
 * the URL to deliver to, or undefined when it is invalid.
 */
export function normalizeWebhookUrl(value: string): string | undefined {
  const hasScheme = /^[a-z][a-z0-9+.-]*:/i.test(value);
  const candidate = hasScheme ? value : `http://${value}`;

  let parsed: URL;
  try {
    parsed = new URL(candidate);
  } catch {
    return undefined;
  }

  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return undefined;
  }
  if (parsed.hostname.length === 0 || parsed.hostname.length > 253) {
    return undefined;
  }
  // NOTE: code-server also resolves the host name. The sandbox skips the DNS
  // lookup so that it works offline, so it accepts an unresolvable host.
  return parsed.href;
}

export interface GetStatusResult {
  exists: boolean;
  codeScanned: boolean;
  intentSubmitted: boolean;
}

export interface SequencerOptions {
  store: SandboxStore;
  webhooks: WebhookDispatcher;
  logger: Logger;
}

/** The sandbox's state machine over the store; implements the interface the browser-facing parts use. */
export class SandboxSequencer implements SandboxContext {
  private readonly store: SandboxStore;
  private readonly webhooks: WebhookDispatcher;
  private readonly logger: Logger;
  private readonly listeners = new Set<(event: SandboxIntentEvent) => void>();

  constructor(options: SequencerOptions) {
    this.store = options.store;
    this.webhooks = options.webhooks;
    this.logger = options.logger;
  }

  getIntent(intentId: string): SandboxIntent | undefined {
    return this.store.getIntent(intentId);
  }

  /** Lists the newest intents, at most `limit` (1000 by default), optionally of one status. */
  listIntents(query: { status?: SandboxIntentStatus; limit?: number } = {}): SandboxIntent[] {
    return this.store.listIntents({ status: query.status, limit: query.limit ?? 1000 });
  }

  listLedger(): LedgerEntry[] {
    return this.store.listLedger();
  }

  onIntentEvent(listener: (event: SandboxIntentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  scan(intentId: string): SandboxIntent {
    const before = this.requireIntent(intentId);
    if (before.status === 'paid' || before.status === 'rejected') {
      throw new SandboxWalletError(409, `Intent ${intentId} is already ${before.status}; only a pending intent can be scanned.`);
    }
    if (before.status === 'scanned') {
      return before;
    }

    this.store.updateIntentStatus(intentId, 'scanned', true, Date.now());
    const after = this.requireIntent(intentId);
    this.logger.info({ intentId, from: before.status, to: after.status }, 'intent scanned');
    this.emit({ type: 'scanned', intent: after });
    return after;
  }

  /**
   * Pays the intent: marks it paid, writes one ledger charge and queues the
   * webhook in one transaction. A rejected intent can still be paid, because
   * a player may scan again after declining and the kit treats a late payment
   * as valid.
   */
  pay(intentId: string): SandboxIntent {
    const { before, charge } = this.store.transaction(() => {
      const current = this.requireIntent(intentId);
      if (current.status === 'paid') {
        throw new SandboxWalletError(409, `Intent ${intentId} is already paid; a second payment was not charged.`);
      }

      const now = Date.now();
      this.store.updateIntentStatus(intentId, 'paid', true, now);
      const entry = this.store.insertLedgerEntry({
        intentId,
        amount: current.amount,
        currency: current.currency,
        destination: current.destination,
        chargedAt: now,
      });
      return { before: current, charge: entry };
    });

    const after = this.requireIntent(intentId);
    this.logger.info(
      { intentId, from: before.status, to: 'paid', amount: charge.amount, currency: charge.currency, ledgerId: charge.id },
      'intent paid',
    );
    if (!before.codeScanned) {
      this.emit({ type: 'scanned', intent: { ...after, status: 'scanned' } });
    }
    this.emit({ type: 'paid', intent: after });
    this.webhooks.enqueue(intentId);
    return after;
  }

  reject(intentId: string): SandboxIntent {
    const before = this.requireIntent(intentId);
    if (before.status === 'paid') {
      throw new SandboxWalletError(409, `Intent ${intentId} is already paid and can no longer be declined.`);
    }
    if (before.status === 'rejected') {
      return before;
    }

    this.store.updateIntentStatus(intentId, 'rejected', true, Date.now());
    const after = this.requireIntent(intentId);
    this.logger.info({ intentId, from: before.status, to: after.status }, 'intent rejected');
    if (!before.codeScanned) {
      this.emit({ type: 'scanned', intent: { ...after, status: 'scanned' } });
    }
    this.emit({ type: 'rejected', intent: after });
    return after;
  }

  /**
   * Handles `Messaging.SendMessage`. Stores the payment request on first
   * sight and accepts an identical repeat without a second record. Throws
   * RpcError for every request that code-server rejects.
   */
  sendMessage(request: proto.SendMessageRequest): proto.SendMessageResponse {
    const intentId = requirePublicKey(request.rendezvousKey?.value, 'rendezvous_key');
    const message = request.message;
    if (message === undefined) {
      throw invalidArgument('message must be set');
    }
    if (message.id !== undefined) {
      throw invalidArgument('message.id cannot be set by clients');
    }
    if (message.sendMessageRequestSignature !== undefined) {
      throw invalidArgument('message.send_message_request_signature cannot be set by clients');
    }

    const kind = message.kind;
    switch (kind.case) {
      case 'requestToReceiveBill':
        break;
      case 'intentSubmitted':
        throw invalidArgument('message.kind cannot be intent_submitted');
      case 'webhookCalled':
        throw invalidArgument('message.kind cannot be webhook_called');
      case undefined:
        throw invalidArgument('message.kind must be set');
      default:
        throw new RpcError('Unimplemented', `message.kind ${kind.case} is not supported by the sandbox; it handles request_to_receive_bill only`);
    }

    this.verifySignature(request, message);
    const bill = this.parseBillRequest(kind.value);

    // The check and the insert run synchronously in one transaction, so
    // concurrent identical requests leave exactly one record.
    const created = this.store.transaction(() => this.validateAndStore(intentId, bill));

    if (created !== undefined) {
      this.logger.info({ intentId, amount: bill.amount, currency: bill.currency }, 'intent created');
      this.emit({ type: 'created', intent: created });
    }
    return new proto.SendMessageResponse({ result: proto.SendMessageResponse_Result.OK });
  }

  getStatus(request: proto.GetStatusRequest): GetStatusResult {
    const intentId = requirePublicKey(request.intentId?.value, 'intent_id');
    const intent = this.store.getIntent(intentId);
    if (intent === undefined) {
      return { exists: false, codeScanned: false, intentSubmitted: false };
    }
    return { exists: true, codeScanned: intent.codeScanned, intentSubmitted: intent.status === 'paid' };
  }

  registerWebhook(request: proto.RegisterWebhookRequest): proto.RegisterWebhookResponse_Result {
    const intentId = requirePublicKey(request.intentId?.value, 'intent_id');
    const results = proto.RegisterWebhookResponse_Result;

    const url = normalizeWebhookUrl(request.url);
    if (url === undefined) {
      this.logger.info({ intentId }, 'webhook URL failed validation');
      return results.INVALID_URL;
    }

    return this.store.transaction(() => {
      const intent = this.store.getIntent(intentId);
      if (intent?.status === 'paid') {
        return results.INTENT_EXISTS;
      }
      if (intent === undefined) {
        return results.REQUEST_NOT_FOUND;
      }
      if (!this.store.insertWebhook(intentId, url, Date.now())) {
        return results.ALREADY_REGISTERED;
      }
      this.logger.info({ intentId }, 'webhook registered');
      return results.OK;
    });
  }

  private requireIntent(intentId: string): StoredIntent {
    const intent = this.store.getIntent(intentId);
    if (intent === undefined) {
      throw new SandboxWalletError(404, `Intent ${intentId} not found; create it with Messaging.SendMessage first.`);
    }
    return intent;
  }

  private emit(event: SandboxIntentEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.logger.error({ intentId: event.intent.intentId, err: error }, 'intent event listener failed');
      }
    }
  }

  /** Verifies the Ed25519 signature over the serialized Message with the rendezvous key. */
  private verifySignature(request: proto.SendMessageRequest, message: proto.Message): void {
    const signature = request.signature?.value;
    if (signature === undefined || signature.length !== SIGNATURE_LENGTH) {
      throw new RpcError('Unauthenticated', `signature must be a ${SIGNATURE_LENGTH}-byte Ed25519 signature`);
    }

    let valid: boolean;
    try {
      valid = ed25519.verify(signature, message.toBinary(), request.rendezvousKey!.value);
    } catch {
      valid = false;
    }
    if (!valid) {
      throw new RpcError('Unauthenticated', 'signature does not verify with the rendezvous key');
    }
  }

  private parseBillRequest(bill: proto.RequestToReceiveBill): ParsedBillRequest {
    const destination = requirePublicKey(bill.requestorAccount?.value, 'requestor_account');

    let parsed: ParsedBillRequest;
    const exchange = bill.exchangeData;
    if (exchange.case === 'exact') {
      if (exchange.value.currency !== CORE_MINT_CURRENCY) {
        throw invalidArgument('exact exchange data is reserved for core mint only');
      }
      parsed = {
        destination,
        currency: exchange.value.currency,
        amount: exchange.value.nativeAmount,
        exchangeRate: exchange.value.exchangeRate,
        quarks: exchange.value.quarks.toString(),
        fees: [],
      };
    } else if (exchange.case === 'partial') {
      if (exchange.value.currency === CORE_MINT_CURRENCY) {
        throw invalidArgument('partial exchange data is reserved for fiat currencies');
      }
      parsed = { destination, currency: exchange.value.currency, amount: exchange.value.nativeAmount, fees: [] };
    } else {
      throw invalidArgument('exchange data is nil');
    }

    for (const fee of bill.additionalFees) {
      parsed.fees.push({
        destination: requirePublicKey(fee.destination?.value, 'additional_fees.destination'),
        basisPoints: fee.feeBps,
      });
    }

    if (bill.domain !== undefined) {
      parsed.domain = bill.domain.value.toLowerCase();
    }
    this.checkDomainFields(bill);
    return parsed;
  }

  private checkDomainFields(bill: proto.RequestToReceiveBill): void {
    if (bill.domain === undefined) {
      if (bill.verifier !== undefined) throw invalidArgument('verifier cannot be set when domain not provided');
      if (bill.signature !== undefined) throw invalidArgument('signature cannot be set when domain not provided');
      if (bill.rendezvousKey !== undefined) throw invalidArgument('rendezvous key cannot be set when domain not provided');
      return;
    }
    if (bill.verifier === undefined) {
      if (bill.signature !== undefined) throw invalidArgument('signature can only be set when verifying domain');
      if (bill.rendezvousKey !== undefined) throw invalidArgument('rendezvous key can only be set when verifying domain');
    }
    // NOTE: a verified domain (login) is accepted without checking the
    // verifier's signature or the domain's published keys.
  }

  /** Returns the new intent, or undefined for an identical repeat. Runs inside a transaction. */
  private validateAndStore(intentId: string, bill: ParsedBillRequest): StoredIntent | undefined {
    const existing = this.store.getIntent(intentId);
    if (existing?.status === 'paid') {
      throw invalidArgument('client submitted intent');
    }

    if (existing !== undefined) {
      this.checkRepeatMatches(existing, bill);
      return undefined;
    }

    const limitError = checkMicroPaymentAmount(bill.currency, bill.amount);
    if (limitError !== undefined) {
      throw invalidArgument(limitError);
    }
    this.checkFees(bill);

    const now = Date.now();
    const intent: StoredIntent = {
      intentId,
      destination: bill.destination,
      currency: bill.currency,
      amount: bill.amount,
      exchangeRate: bill.exchangeRate,
      quarks: bill.quarks,
      fees: bill.fees,
      domain: bill.domain,
      status: 'pending',
      codeScanned: false,
      createdAt: now,
      updatedAt: now,
    };
    this.store.insertIntent(intent);
    return intent;
  }

  private checkRepeatMatches(existing: StoredIntent, bill: ParsedBillRequest): void {
    if (existing.destination !== bill.destination) {
      throw invalidArgument('destination mismatches original request');
    }
    if (existing.currency !== bill.currency) {
      throw invalidArgument('exchange currency mismatches original request');
    }
    if (existing.amount !== bill.amount) {
      throw invalidArgument('native amount mismatches original request');
    }
    if (bill.exchangeRate !== undefined && existing.exchangeRate !== bill.exchangeRate) {
      throw invalidArgument('exchange rate mismatches original request');
    }
    if (bill.quarks !== undefined && existing.quarks !== bill.quarks) {
      throw invalidArgument('quarks mismatches original request');
    }
    if (existing.domain !== bill.domain) {
      throw invalidArgument('domain mismatches original request');
    }
    if (existing.fees.length !== bill.fees.length) {
      throw invalidArgument(`original request configured ${existing.fees.length} fee takers`);
    }
    existing.fees.forEach((fee, index) => {
      const repeated = bill.fees[index]!;
      if (fee.destination !== repeated.destination) {
        throw invalidArgument(`destination for fee at index ${index} mismatches original request`);
      }
      if (fee.basisPoints !== repeated.basisPoints) {
        throw invalidArgument(`basis points for fee at index ${index} mismatches original request`);
      }
    });
  }

  private checkFees(bill: ParsedBillRequest): void {
    const seen = new Set<string>();
    let totalBasisPoints = 0;
    bill.fees.forEach((fee, index) => {
      totalBasisPoints += fee.basisPoints;
      if (fee.destination === bill.destination) {
        throw invalidArgument(`fee taker at index ${index} is the payment destination and should be omitted`);
      }
      if (seen.has(fee.destination)) {
        throw invalidArgument(`fee taker at index ${index} appears multiple times and should be merged`);
      }
      seen.add(fee.destination);
    });
    if (totalBasisPoints > MAX_FEE_BASIS_POINTS) {
      throw invalidArgument(`total fee percentage cannot exceed ${MAX_FEE_BASIS_POINTS} basis points`);
    }
  }
}
