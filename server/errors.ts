import type { ErrorBody, ErrorCode } from '../protocol/index.js';

/** Ids that an error concerns; logged with it and never secret. */
export interface ErrorContext {
  purchaseId?: string;
  intentId?: string;
  playerId?: string;
  itemId?: string;
  [key: string]: string | number | boolean | undefined;
}

/**
 * The one error class of the kit. `code` is a stable protocol error code that
 * travels to the plugin in acknowledgements; `message` says what was wrong and
 * what to do; `context` carries the ids involved.
 */
export class CodePayError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CodePayError';
    this.code = code;
    this.context = context;
  }

  toBody(): ErrorBody {
    return { code: this.code, message: this.message };
  }
}

/** Thrown at start-up for a configuration problem; the message names the setting and the fix. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
