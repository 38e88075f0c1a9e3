// The interface between the sandbox's core (RPC handlers, persistence,
// control API, webhooks) and its browser-facing parts (the message stream,
// the wallet page and the elements pages). The core implements it; the
// browser-facing parts only read intents and subscribe to their events.

/** Status of a sandbox intent in the simulated wallet. */
export type SandboxIntentStatus = 'pending' | 'scanned' | 'paid' | 'rejected';

/** A payment request the sandbox holds, as stored from `Messaging.SendMessage`. */
export interface SandboxIntent {
  /** Base58 rendezvous public key. */
  intentId: string;
  /** Base58 requestor account from the RequestToReceiveBill. */
  destination: string;
  /** Lower-case currency code. */
  currency: string;
  /** Native amount in the currency's major unit. */
  amount: number;
  status: SandboxIntentStatus;
  codeScanned: boolean;
  /** Set once `MicroPayment.RegisterWebhook` accepted a URL. */
  webhookUrl?: string;
  /** Milliseconds since the Unix epoch. */
  createdAt: number;
  updatedAt: number;
  paidAt?: number;
}

export type SandboxIntentEventType = 'created' | 'scanned' | 'paid' | 'rejected';

export interface SandboxIntentEvent {
  type: SandboxIntentEventType;
  intent: SandboxIntent;
}

/** Error of the wallet actions. `status` is the HTTP status the control API responds with. */
export class SandboxWalletError extends Error {
  readonly status: 404 | 409;

  constructor(status: 404 | 409, message: string) {
    super(message);
    this.name = 'SandboxWalletError';
    this.status = status;
  }
}

export interface SandboxContext {
  getIntent(intentId: string): SandboxIntent | undefined;
  listIntents(): SandboxIntent[];
  /** Simulates the wallet scanning the code. Throws SandboxWalletError (404 unknown, 409 already paid or rejected). */
  scan(intentId: string): SandboxIntent;
  /** Simulates the wallet paying: one ledger charge, then webhook and stream events. Throws SandboxWalletError (404, 409). */
  pay(intentId: string): SandboxIntent;
  /** Simulates the player declining in the wallet. Throws SandboxWalletError (404, 409). */
  reject(intentId: string): SandboxIntent;
  /** Subscribes to intent events; returns the function that unsubscribes. */
  onIntentEvent(listener: (event: SandboxIntentEvent) => void): () => void;
}
