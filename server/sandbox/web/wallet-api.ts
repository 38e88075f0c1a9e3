// Calls the wallet API that the pages router serves next to the pages, so
// the calls stay on the page's origin wherever the page was loaded from.

import type { SandboxIntent } from '../context.js';

/** A simulated wallet action, named as the path segment of its route. */
export type WalletAction = 'scan' | 'pay' | 'reject';

/** The wallet API's error body. */
interface ErrorResponse {
  error?: { code?: string; message?: string };
}

/** A failed wallet API call, with the HTTP status and the API's message. */
export class WalletApiError extends Error {
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.name = 'WalletApiError';
    this.status = status;
  }
}

/** Runs a wallet action on an intent; throws WalletApiError when the API rejects it. */
export async function runWalletAction(apiBase: string, intentId: string, action: WalletAction): Promise<SandboxIntent> {
  const response = await fetch(`${apiBase}intents/${encodeURIComponent(intentId)}/${action}`, { method: 'POST' });
  const body = (await response.json()) as { intent?: SandboxIntent } & ErrorResponse;

  if (!response.ok || !body.intent) {
    const message = body.error?.message ?? `HTTP ${response.status}`;
    throw new WalletApiError(response.status, `${action} failed: ${message}`);
  }

  return body.intent;
}

/** Lists every intent the sandbox stores. */
export async function listIntents(apiBase: string): Promise<SandboxIntent[]> {
  const response = await fetch(`${apiBase}intents`);
  if (!response.ok) {
    throw new Error(`listing intents failed: HTTP ${response.status}`);
  }

  const body = (await response.json()) as { intents: SandboxIntent[] };
  return body.intents;
}

/** Reads one intent, or returns undefined when the sandbox does not store it (yet). */
export async function getIntent(apiBase: string, intentId: string): Promise<SandboxIntent | undefined> {
  const response = await fetch(`${apiBase}intents/${encodeURIComponent(intentId)}`);
  if (response.status === 404) {
    return undefined;
  }
  if (!response.ok) {
    throw new WalletApiError(response.status, `reading intent ${intentId} failed: HTTP ${response.status}`);
  }

  const body = (await response.json()) as { intent: SandboxIntent };
  return body.intent;
}
