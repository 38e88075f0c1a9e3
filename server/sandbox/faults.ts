// Fault injection for tests: drop, delay or duplicate webhook deliveries, and
// fail or slow the `GetStatus` and `SendMessage` RPCs. Faults live in memory
// only, so a restart clears them.
import { z } from 'zod';

/** A number of upcoming events to affect, or every one until the faults are cleared. */
const countSchema = z.union([z.number().int().positive(), z.literal('always')]);

const delaySchema = z.number().int().min(0).max(600_000);

const rpcFaultSchema = z
  .object({
    /** How many upcoming calls fail. */
    fail: countSchema.optional(),
    /**
     * Response of a failed call: `unavailable` is HTTP 503, which the
     * official client throws on, and `error` is HTTP 200 with an ERROR envelope.
     */
    failWith: z.enum(['unavailable', 'error']).optional(),
    /** Milliseconds to wait before handling every call. */
    delayMs: delaySchema.optional(),
  })
  .strict();

const webhookFaultSchema = z
  .object({
    /** How many upcoming delivery attempts are not sent; each counts as a failed attempt. */
    drop: countSchema.optional(),
    /** How many upcoming successful deliveries are sent a second time right after. */
    duplicate: countSchema.optional(),
    /** Milliseconds to wait before every delivery attempt. */
    delayMs: delaySchema.optional(),
  })
  .strict();

/** The body of `POST /control/faults`. */
export const faultsRequestSchema = z
  .object({
    /** Clears every fault before applying the sections given with it. */
    clear: z.literal(true).optional(),
    webhook: webhookFaultSchema.optional(),
    getStatus: rpcFaultSchema.optional(),
    sendMessage: rpcFaultSchema.optional(),
  })
  .strict();

export type FaultsRequest = z.infer<typeof faultsRequestSchema>;
export type FaultCount = z.infer<typeof countSchema>;
export type RpcFault = z.infer<typeof rpcFaultSchema>;
export type WebhookFault = z.infer<typeof webhookFaultSchema>;

/** The faults in force, as `GET /control/faults` returns them. */
export interface ActiveFaults {
  webhook: WebhookFault;
  getStatus: RpcFault;
  sendMessage: RpcFault;
}

export type FaultedRpc = 'getStatus' | 'sendMessage';

/** The fault an RPC handler applies to one call. */
export interface RpcFaultDecision {
  delayMs: number;
  fail?: 'unavailable' | 'error';
}

/** Takes one from a count; returns the new count and whether the event is affected. */
function consume(count: FaultCount | undefined): { affected: boolean; remaining: FaultCount | undefined } {
  if (count === undefined) {
    return { affected: false, remaining: undefined };
  }
  if (count === 'always') {
    return { affected: true, remaining: 'always' };
  }
  const remaining = count - 1;
  return { affected: true, remaining: remaining > 0 ? remaining : undefined };
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as T;
}

export class FaultInjector {
  private faults: ActiveFaults = { webhook: {}, getStatus: {}, sendMessage: {} };

  /** Applies a validated request: each section given replaces that section. */
  apply(request: FaultsRequest): ActiveFaults {
    if (request.clear === true) {
      this.clear();
    }
    if (request.webhook !== undefined) this.faults.webhook = withoutUndefined(request.webhook);
    if (request.getStatus !== undefined) this.faults.getStatus = withoutUndefined(request.getStatus);
    if (request.sendMessage !== undefined) this.faults.sendMessage = withoutUndefined(request.sendMessage);
    return this.current();
  }

  clear(): void {
    this.faults = { webhook: {}, getStatus: {}, sendMessage: {} };
  }

  current(): ActiveFaults {
    return structuredClone(this.faults);
  }

  /** Decides the fault for one RPC call and counts it down. */
  takeRpcFault(rpc: FaultedRpc): RpcFaultDecision {
    const fault = this.faults[rpc];
    const { affected, remaining } = consume(fault.fail);
    fault.fail = remaining;
    if (remaining === undefined) delete fault.fail;

    const decision: RpcFaultDecision = { delayMs: fault.delayMs ?? 0 };
    if (affected) {
      decision.fail = fault.failWith ?? 'unavailable';
    }
    return decision;
  }

  /** Decides whether one webhook delivery attempt is dropped, and counts it down. */
  takeWebhookDrop(): boolean {
    const { affected, remaining } = consume(this.faults.webhook.drop);
    this.faults.webhook.drop = remaining;
    if (remaining === undefined) delete this.faults.webhook.drop;
    return affected;
  }

  /** Decides whether one successful webhook delivery is sent twice, and counts it down. */
  takeWebhookDuplicate(): boolean {
    const { affected, remaining } = consume(this.faults.webhook.duplicate);
    this.faults.webhook.duplicate = remaining;
    if (remaining === undefined) delete this.faults.webhook.duplicate;
    return affected;
  }

  webhookDelayMs(): number {
    return this.faults.webhook.delayMs ?? 0;
  }
}
