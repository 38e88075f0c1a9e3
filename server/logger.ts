// The kit's pino logger. Every log line goes through a logger built here, so
// the redaction below applies whether the game passes its own pino logger or
// uses the default one.
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** Field names that hold secrets: never written to a log. */
export const SECRET_FIELDS = ['clientSecret', 'keySecret', 'token', 'authorization'] as const;

/**
 * pino `redact` paths for the secret fields at the top level and up to three
 * objects deep (for example `purchase.clientSecret`, `handshake.auth.token`,
 * `req.headers.authorization`). pino's paths take one `*` per level and have
 * no "any depth" form, so deeper nesting is not covered.
 */
export const REDACT_PATHS: readonly string[] = SECRET_FIELDS.flatMap((field) => [
  field,
  `*.${field}`,
  `*.*.${field}`,
  `*.*.*.${field}`,
]);

/** The `redact` option the kit applies to every logger it writes to. */
export const REDACT_OPTIONS = { paths: [...REDACT_PATHS], censor: '[redacted]' };

/** Creates the default logger: JSON lines on stdout with the secret fields redacted. */
export function createDefaultLogger(options: LoggerOptions = {}): Logger {
  return pino({
    name: 'code-pay',
    level: process.env.CODE_PAY_LOG_LEVEL ?? 'info',
    ...options,
    redact: REDACT_OPTIONS,
  });
}

/**
 * Wraps a game's own pino logger (or the default one when none is given) in a
 * child that carries `component: 'code-pay'` and redacts the secret fields.
 * NOTE: a pino child's `redact` replaces its parent's, so paths the game's
 * own logger redacts do not apply to the kit's lines; only these do.
 */
export function createKitLogger(logger?: Logger): Logger {
  const base = logger ?? createDefaultLogger();
  return base.child({ component: 'code-pay' }, { redact: REDACT_OPTIONS });
}

/** The ids a purchase's log lines carry. */
export interface PurchaseLogIds {
  purchaseId?: string;
  intentId?: string;
  playerId?: string;
  itemId?: string;
}

/** Creates a child logger whose every line carries the purchase's ids (and only the ids that are set). */
export function purchaseLogger(logger: Logger, ids: PurchaseLogIds): Logger {
  const bindings: Record<string, string> = {};
  for (const [name, value] of Object.entries(ids)) {
    if (typeof value === 'string' && value.length > 0) {
      bindings[name] = value;
    }
  }
  return logger.child(bindings);
}

/** Creates a child logger for one player's socket or request. */
export function playerLogger(logger: Logger, playerId: string): Logger {
  return logger.child({ playerId });
}
