// An in-memory SandboxContext for the stream and pages tests, used until the
// sandbox core can be started in-process. It follows the contract in
// server/sandbox/context.ts: wallet actions throw SandboxWalletError with 404
// for unknown intents and 409 for paid or rejected ones.

import {
  SandboxWalletError,
  type SandboxContext,
  type SandboxIntent,
  type SandboxIntentEvent,
} from '../server/sandbox/context.js';

export class FakeSandboxContext implements SandboxContext {
  private readonly intents = new Map<string, SandboxIntent>();
  private readonly listeners = new Set<(event: SandboxIntentEvent) => void>();
  /** Every pay call that charged, in order, standing in for the core's ledger. */
  readonly charges: string[] = [];

  /** Stores an intent as `Messaging.SendMessage` would and emits `created`. */
  create(fields: { intentId: string; destination: string; currency: string; amount: number }): SandboxIntent {
    const now = Date.now();
    const intent: SandboxIntent = { ...fields, status: 'pending', codeScanned: false, createdAt: now, updatedAt: now };
    this.intents.set(intent.intentId, intent);
    this.emit('created', intent);
    return intent;
  }

  getIntent(intentId: string): SandboxIntent | undefined {
    const intent = this.intents.get(intentId);
    return intent ? { ...intent } : undefined;
  }

  listIntents(): SandboxIntent[] {
    return [...this.intents.values()].map((intent) => ({ ...intent }));
  }

  scan(intentId: string): SandboxIntent {
    const intent = this.open(intentId);
    intent.codeScanned = true;
    intent.status = 'scanned';
    intent.updatedAt = Date.now();
    this.emit('scanned', intent);
    return { ...intent };
  }

  pay(intentId: string): SandboxIntent {
    const intent = this.open(intentId);
    intent.codeScanned = true;
    intent.status = 'paid';
    intent.updatedAt = Date.now();
    intent.paidAt = intent.updatedAt;
    this.charges.push(intentId);
    this.emit('paid', intent);
    return { ...intent };
  }

  reject(intentId: string): SandboxIntent {
    const intent = this.open(intentId);
    intent.status = 'rejected';
    intent.updatedAt = Date.now();
    this.emit('rejected', intent);
    return { ...intent };
  }

  onIntentEvent(listener: (event: SandboxIntentEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private open(intentId: string): SandboxIntent {
    const intent = this.intents.get(intentId);
    if (!intent) {
      throw new SandboxWalletError(404, `intent ${intentId} not found`);
    }
    if (intent.status === 'paid' || intent.status === 'rejected') {
      throw new SandboxWalletError(409, `intent ${intentId} is already ${intent.status}`);
    }
    return intent;
  }

  private emit(type: SandboxIntentEvent['type'], intent: SandboxIntent): void {
    for (const listener of this.listeners) {
      listener({ type, intent: { ...intent } });
    }
  }
}
