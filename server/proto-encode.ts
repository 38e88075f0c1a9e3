// Direct protobuf encoding of the few messaging messages an intent needs, so
// that creating a purchase does not pay for building `@bufbuild/protobuf`
// message objects. The output is byte-identical to `toBinary()` of the
// `@code-wallet/rpc` 1.3 classes for the values the kit produces: proto3
// fields in field-number order, fields at their zero value left out, no
// unknown fields. test/intent-derivation.test.ts compares the bytes.
//
// Field numbers, from code.messaging.v1 and code.transaction.v2:
//   SendMessageRequest       { message = 1, rendezvous_key = 2, signature = 3 }
//   OpenMessageStreamRequest { rendezvous_key = 1, signature = 2 }
//   Message                  { request_to_receive_bill = 5 (oneof kind) }
//   RequestToReceiveBill     { requestor_account = 1, exact = 2 | partial = 3 }
//   ExchangeData             { currency = 1, exchange_rate = 2, native_amount = 3, quarks = 4 }
//   ExchangeDataWithoutRate  { currency = 1, native_amount = 2 }
//   RendezvousKey, SolanaAccountId, Signature { value = 1 }

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;

/** Returns how many bytes the varint encoding of a non-negative safe integer takes. */
function varintSize(value: number): number {
  let size = 1;
  let rest = value;
  while (rest >= 0x80) {
    rest = Math.floor(rest / 0x80);
    size++;
  }
  return size;
}

/**
 * A growable byte buffer with the protobuf primitives. Nested messages are
 * written in place between `beginMessage` and `endMessage`, which
 * back-patches the length prefix, so one writer encodes a whole request.
 */
class ProtoWriter {
  private buffer = new Uint8Array(256);
  private view = new DataView(this.buffer.buffer);
  private length = 0;
  private readonly messageStarts: number[] = [];

  private reserve(count: number): void {
    if (this.length + count <= this.buffer.length) {
      return;
    }
    const grown = new Uint8Array(Math.max(this.buffer.length * 2, this.length + count));
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  private writeVarintAt(position: number, value: number): void {
    let offset = position;
    let rest = value;
    while (rest >= 0x80) {
      this.buffer[offset++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.buffer[offset] = rest;
  }

  /** Writes a non-negative integer up to Number.MAX_SAFE_INTEGER as a varint. */
  varint(value: number): this {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(`Cannot encode ${value} as a protobuf varint.`);
    }
    const size = varintSize(value);
    this.reserve(size);
    this.writeVarintAt(this.length, value);
    this.length += size;
    return this;
  }

  tag(fieldNumber: number, wireType: number): this {
    return this.varint(fieldNumber * 8 + wireType);
  }

  bytesField(fieldNumber: number, bytes: Uint8Array): this {
    this.tag(fieldNumber, WIRE_LENGTH_DELIMITED).varint(bytes.length);
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
    return this;
  }

  /** Starts a nested message field, with a one-byte length placeholder. */
  beginMessage(fieldNumber: number): this {
    this.tag(fieldNumber, WIRE_LENGTH_DELIMITED);
    this.reserve(1);
    this.messageStarts.push(this.length);
    this.length += 1;
    return this;
  }

  /** Ends the innermost nested message and writes its length, moving the content when the length needs more than one byte. */
  endMessage(): this {
    const start = this.messageStarts.pop();
    if (start === undefined) {
      throw new Error('endMessage() called without a matching beginMessage().');
    }
    const contentLength = this.length - start - 1;
    const size = varintSize(contentLength);
    if (size > 1) {
      this.reserve(size - 1);
      this.buffer.copyWithin(start + size, start + 1, this.length);
      this.length += size - 1;
    }
    this.writeVarintAt(start, contentLength);
    return this;
  }

  /** Writes a proto3 string field, left out when empty. */
  stringField(fieldNumber: number, value: string): this {
    if (value.length === 0) {
      return this;
    }
    return this.bytesField(fieldNumber, Buffer.from(value, 'utf8'));
  }

  /** Writes a proto3 double field, left out when zero (including -0). */
  doubleField(fieldNumber: number, value: number): this {
    if (value === 0) {
      return this;
    }
    this.tag(fieldNumber, WIRE_FIXED64);
    this.reserve(8);
    this.view.setFloat64(this.length, value, true);
    this.length += 8;
    return this;
  }

  /** Writes a proto3 uint64 field from a safe integer, left out when zero. */
  uint64Field(fieldNumber: number, value: number): this {
    if (value === 0) {
      return this;
    }
    return this.tag(fieldNumber, WIRE_VARINT).varint(value);
  }

  /** Writes a message with a single proto3 bytes field `value = 1` (RendezvousKey, SolanaAccountId, Signature). */
  valueMessageField(fieldNumber: number, value: Uint8Array): this {
    this.beginMessage(fieldNumber);
    if (value.length > 0) {
      this.bytesField(1, value);
    }
    return this.endMessage();
  }

  finish(): Uint8Array {
    if (this.messageStarts.length > 0) {
      throw new Error('finish() called inside a nested message.');
    }
    return this.buffer.slice(0, this.length);
  }
}

/** The exchange data of a RequestToReceiveBill. */
export type BillExchangeData =
  /** `exact` (ExchangeData), which the SDK sends for kin with an exchange rate of 1. */
  | { kind: 'exact'; currency: string; exchangeRate: number; nativeAmount: number; quarks: number }
  /** `partial` (ExchangeDataWithoutRate), which the SDK sends for fiat currencies. */
  | { kind: 'partial'; currency: string; nativeAmount: number };

/**
 * Encodes `Message { request_to_receive_bill: RequestToReceiveBill { requestor_account, exact | partial } }`,
 * the envelope that the rendezvous key signs.
 */
export function encodeRequestToReceiveBillMessage(destination: Uint8Array, exchange: BillExchangeData): Uint8Array {
  const writer = new ProtoWriter().beginMessage(5).valueMessageField(1, destination);

  if (exchange.kind === 'exact') {
    writer
      .beginMessage(2)
      .stringField(1, exchange.currency)
      .doubleField(2, exchange.exchangeRate)
      .doubleField(3, exchange.nativeAmount)
      .uint64Field(4, exchange.quarks)
      .endMessage();
  } else {
    writer.beginMessage(3).stringField(1, exchange.currency).doubleField(2, exchange.nativeAmount).endMessage();
  }

  return writer.endMessage().finish();
}

/** Encodes `SendMessageRequest { message, rendezvous_key, signature }` around already encoded message bytes. */
export function encodeSendMessageRequest(
  message: Uint8Array,
  rendezvousPublicKey: Uint8Array,
  signature: Uint8Array,
): Uint8Array {
  return new ProtoWriter()
    .bytesField(1, message)
    .valueMessageField(2, rendezvousPublicKey)
    .valueMessageField(3, signature)
    .finish();
}

/**
 * Encodes `OpenMessageStreamRequest { rendezvous_key, signature }`. Without a
 * signature this returns the bytes that the rendezvous key signs, because
 * Code's server verifies the signature over the request with its signature
 * field cleared.
 */
export function encodeOpenMessageStreamRequest(rendezvousPublicKey: Uint8Array, signature?: Uint8Array): Uint8Array {
  const writer = new ProtoWriter().valueMessageField(1, rendezvousPublicKey);
  if (signature !== undefined) {
    writer.valueMessageField(2, signature);
  }
  return writer.finish();
}
