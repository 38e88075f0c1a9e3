import { Router } from 'express';
import type { SandboxContext } from './context.js';

export interface SandboxPagesOptions {
  /** Public base URL of the sandbox, for example `http://127.0.0.1:8081`. */
  baseUrl: () => string;
}

/**
 * Serves the wallet page at `/wallet` and the pages that answer the
 * `@code-wallet/elements` iframe URLs under `/sdk/v1/elements/`.
 */
export function createSandboxPagesRouter(context: SandboxContext, options: SandboxPagesOptions): Router {
  // TODO: replaced by the wallet and elements pages.
  void context;
  void options;
  return Router();
}
