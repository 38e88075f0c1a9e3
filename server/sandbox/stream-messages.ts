// Builds the `Messaging` messages that the sandbox delivers on an intent's
// message stream, from the intent as the core stores it. Code's server
// stores the messages themselves and deletes them when the client acks them.
// The sandbox derives them from the intent's state instead, so a stream that
// opens late still receives everything that already happened.

import { sha256 } from '@noble/hashes/sha256';
import bs58 from 'bs58';
import * as proto from '@code-wallet/rpc';
import type { SandboxIntent, SandboxIntentEventType } from './context.js';

/** The message kinds the sandbox delivers, in the order a payment produces them. */
export type StreamMessageKind = 'requestToReceiveBill' | 'codeScanned' | 'clientRejectedPayment' | 'intentSubmitted';

/** Quarks per kin, for the exact exchange data of kin payment requests. */
const QUARKS_PER_KIN = 100_000n;

/**
 * Lists the messages an intent in this state has produced so far, oldest
 * first. A wallet scans before it pays or declines, so a paid or rejected
 * intent also yields `codeScanned`.
 */
export function messageKindsForIntent(intent: SandboxIntent): StreamMessageKind[] {
  const kinds: StreamMessageKind[] = ['requestToReceiveBill'];

  if (intent.codeScanned || intent.status !== 'pending') {
    kinds.push('codeScanned');
  }

  if (intent.status === 'rejected') {
    kinds.push('clientRejectedPayment');
  }

  if (intent.status === 'paid') {
    kinds.push('intentSubmitted');
  }

  return kinds;
}

/** Maps an intent event of the core to the message kinds it adds to the stream. */
export function messageKindsForEvent(type: SandboxIntentEventType): StreamMessageKind[] {
  switch (type) {
    case 'created':
      return ['requestToReceiveBill'];
    case 'scanned':
      return ['codeScanned'];
    case 'paid':
      return ['codeScanned', 'intentSubmitted'];
    case 'rejected':
      return ['codeScanned', 'clientRejectedPayment'];
  }
}

/**
 * Derives a stable 16-byte message id from the intent id and the kind, so a
 * message keeps its id across streams and an `AckMessages` call can name it.
 */
export function messageIdFor(intentId: string, kind: StreamMessageKind): Uint8Array {
  return sha256(new TextEncoder().encode(`${intentId}:${kind}`)).subarray(0, 16);
}

/** Builds the protobuf `Message` of one kind for an intent. */
export function buildStreamMessage(intent: SandboxIntent, kind: StreamMessageKind, now = Date.now()): proto.Message {
  const id = new proto.MessageId({ value: messageIdFor(intent.intentId, kind) });
  const intentId = new proto.Common.IntentId({ value: bs58.decode(intent.intentId) });

  switch (kind) {
    case 'requestToReceiveBill':
      return new proto.Message({ id, kind: { case: kind, value: buildRequestToReceiveBill(intent) } });
    case 'codeScanned':
      return new proto.Message({
        id,
        kind: { case: kind, value: new proto.CodeScanned({ timestamp: timestampFromMillis(now) }) },
      });
    case 'clientRejectedPayment':
      return new proto.Message({ id, kind: { case: kind, value: new proto.ClientRejectedPayment({ intentId }) } });
    case 'intentSubmitted':
      return new proto.Message({ id, kind: { case: kind, value: new proto.IntentSubmitted({ intentId }) } });
  }
}

/**
 * Rebuilds the `RequestToReceiveBill` from the stored fields. Kin requests
 * carry exact exchange data and the others partial data, as
 * `@code-wallet/intents` 1.1 builds them. Additional fees are not stored by
 * the core, so they are missing here.
 */
function buildRequestToReceiveBill(intent: SandboxIntent): proto.RequestToReceiveBill {
  const requestorAccount = new proto.Common.SolanaAccountId({ value: bs58.decode(intent.destination) });

  if (intent.currency === 'kin') {
    const quarks = BigInt(Math.round(intent.amount * Number(QUARKS_PER_KIN)));
    const exact = new proto.ExchangeData({ currency: 'kin', exchangeRate: 1, quarks, nativeAmount: intent.amount });
    return new proto.RequestToReceiveBill({ requestorAccount, exchangeData: { case: 'exact', value: exact } });
  }

  const partial = new proto.ExchangeDataWithoutRate({ currency: intent.currency, nativeAmount: intent.amount });
  return new proto.RequestToReceiveBill({ requestorAccount, exchangeData: { case: 'partial', value: partial } });
}

function timestampFromMillis(millis: number): { seconds: bigint; nanos: number } {
  return { seconds: BigInt(Math.floor(millis / 1000)), nanos: (millis % 1000) * 1_000_000 };
}
