// How the kit reads an ERROR envelope from Code's sequencer: whether the
// request was wrong (`sequencer_rejected`, retrying it cannot help) or the
// service failed (`sequencer_unavailable`, the same request is safe to retry).
//
// Sources of the mapping:
// - code-server (pkg/code/server/messaging/server.go and message_handler.go,
//   commit 97e549c) rejects a SendMessage with a gRPC status:
//   InvalidArgument for every MessageValidationError (an amount outside the
//   currency's limit, a repeat whose destination, currency or amount differ,
//   "client submitted intent" for an intent that was already paid, malformed
//   messages), Unauthenticated for a bad signature, PermissionDenied for an
//   authorization failure, and Internal with an empty message for its own
//   failures (database, forwarding). MicroPayment.GetStatus and
//   RegisterWebhook answer Internal for database failures.
// - Code's HTTP gateway (code-sdk, packages/proxy/src/service/handlerGRPC.ts)
//   turns a gRPC error into an HTTP 200 `Common.Response { result: ERROR,
//   message }` whose message is the @bufbuild/connect error text,
//   `[invalid_argument] usd currency has a maximum amount of 1.00`, and
//   answers HTTP 500 with an ERROR envelope when the gateway itself fails.
// - The sandbox sequencer writes the gRPC code name first,
//   `InvalidArgument: native amount mismatches original request`.

/** gRPC status codes, in @bufbuild/connect's snake_case spelling, that mean the request itself was refused. */
const REJECTING_STATUS_CODES: ReadonlySet<string> = new Set([
  'invalid_argument',
  'unauthenticated',
  'permission_denied',
  'failed_precondition',
  'out_of_range',
  'already_exists',
  'not_found',
]);

/**
 * code-server's MessageValidationError wordings (message_handler.go and
 * server.go at commit 97e549c). An ERROR envelope without a status code
 * whose message matches one of these is a rejection. Any other message
 * without a status code is treated as an outage, because a retry is the safe
 * response to an error the kit does not recognise.
 */
const VALIDATION_MESSAGE_PATTERNS: readonly RegExp[] = [
  /mismatches original request/,
  /currency is not currently supported/,
  /currency has a (maximum|minimum) amount of/,
  /^client submitted intent$/,
  /^payment requests require rewrite$/,
  /cannot be set by clients/,
  /^message\.kind (must be set|cannot be )/,
  /exchange data/,
  /fee taker|fee at index|total fee percentage/,
  /^original request /,
  /^domain is invalid/,
  /(signature|rendezvous key|verifier) (can only|cannot|must) be set/,
  /^rendezvous key mismatch$/,
  /^requestor account must be a primary account$/,
  /signature does not verify/,
];

export type ErrorEnvelopeKind = 'rejected' | 'unavailable';

export interface ClassifiedErrorEnvelope {
  kind: ErrorEnvelopeKind;
  /** The gRPC status code in snake_case, when the message carried one. */
  statusCode?: string;
  /** The sequencer's own message without the status code prefix. */
  message: string;
}

/** gRPC status code names (google.golang.org/grpc/codes), as the sandbox writes them before a colon. */
const GRPC_CODE_NAMES: ReadonlySet<string> = new Set([
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
]);

/** Converts a gRPC code name such as `InvalidArgument` to `invalid_argument`. */
function toSnakeCase(code: string): string {
  return code.replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
}

/**
 * Splits a status code off the message in one of three forms:
 * `[invalid_argument] text` (connect), `rpc error: code = InvalidArgument
 * desc = text` (grpc-go) and `InvalidArgument: text` (the sandbox).
 */
function parseStatusCode(message: string): { statusCode?: string; text: string } {
  const connectForm = /^\[([a-z_]+)\]\s*(.*)$/s.exec(message);
  if (connectForm !== null) {
    return { statusCode: connectForm[1], text: connectForm[2] ?? '' };
  }

  const grpcGoForm = /^rpc error: code = ([A-Za-z]+) desc = (.*)$/s.exec(message);
  if (grpcGoForm !== null) {
    return { statusCode: toSnakeCase(grpcGoForm[1] ?? ''), text: grpcGoForm[2] ?? '' };
  }

  const prefixForm = /^([A-Za-z]+): (.*)$/s.exec(message);
  if (prefixForm !== null && GRPC_CODE_NAMES.has(prefixForm[1] ?? '')) {
    return { statusCode: toSnakeCase(prefixForm[1] ?? ''), text: prefixForm[2] ?? '' };
  }

  return { text: message };
}

/** Decides whether an ERROR envelope's message is a rejection of the request or a failure of the service. */
export function classifyErrorEnvelope(envelopeMessage: string): ClassifiedErrorEnvelope {
  const message = envelopeMessage.trim();
  const { statusCode, text } = parseStatusCode(message);

  if (statusCode !== undefined) {
    const kind = REJECTING_STATUS_CODES.has(statusCode) ? 'rejected' : 'unavailable';
    return { kind, statusCode, message: text };
  }

  const isValidationMessage = VALIDATION_MESSAGE_PATTERNS.some((pattern) => pattern.test(text));
  return { kind: isValidationMessage ? 'rejected' : 'unavailable', message: text };
}
