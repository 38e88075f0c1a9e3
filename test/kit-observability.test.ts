// The kit's logger redaction and its per-instance metrics registry.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';

import { pino } from 'pino';
import { describe, expect, it } from 'vitest';

import { createKitLogger, purchaseLogger } from '../server/logger.js';
import { createMetrics } from '../server/metrics.js';
import { createSequencerClient } from '../server/sequencer.js';

/** Creates a pino logger that keeps every line in memory, parsed. */
function memoryLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim().length > 0) {
          lines.push(JSON.parse(line) as Record<string, unknown>);
        }
      }
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

/** Returns a loopback port that was free a moment ago and is now closed. */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('kit logger', () => {
  it('redacts secrets at every supported depth', () => {
    const { logger, lines } = memoryLogger();
    const kitLogger = createKitLogger(logger);

    kitLogger.info(
      {
        clientSecret: 'secret-1',
        keySecret: 'secret-2',
        purchase: { id: 'p1', clientSecret: 'secret-3' },
        handshake: { auth: { token: 'secret-4' } },
        req: { headers: { authorization: 'secret-5' } },
      },
      'purchase created',
    );

    const text = JSON.stringify(lines);
    for (const secret of ['secret-1', 'secret-2', 'secret-3', 'secret-4', 'secret-5']) {
      expect(text).not.toContain(secret);
    }
    expect(lines[0]!.component).toBe('code-pay');
    expect((lines[0]!.purchase as Record<string, unknown>).id).toBe('p1');
  });

  it('purchase logger carries the ids', () => {
    const { logger, lines } = memoryLogger();

    purchaseLogger(createKitLogger(logger), { purchaseId: 'p1', intentId: 'i1', playerId: 'alice', itemId: undefined }).info('paid');

    expect(lines[0]).toMatchObject({ purchaseId: 'p1', intentId: 'i1', playerId: 'alice', msg: 'paid' });
    expect(lines[0]).not.toHaveProperty('itemId');
  });

  it('sequencer failure is logged once', async () => {
    const { logger, lines } = memoryLogger();
    const port = await closedPort();
    const client = createSequencerClient({ endpoint: `http://127.0.0.1:${port}/v1`, timeoutMs: 2_000, logger: createKitLogger(logger) });

    await expect(client.getStatus('11111111111111111111111111111112')).rejects.toMatchObject({ code: 'sequencer_unavailable' });

    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, method: 'getStatus', intentId: '11111111111111111111111111111112', code: 'sequencer_unavailable' });
    client.close();
  });
});

describe('kit metrics', () => {
  it('two kits in one process do not collide', async () => {
    const first = createMetrics();
    const second = createMetrics();

    first.recordTransition('none', 'pending');
    first.recordTransition('pending', 'paid');
    second.recordWebhookRejection('signature');

    const firstText = await first.render();
    const secondText = await second.render();
    expect(firstText).toContain('code_pay_purchase_transitions_total{from="pending",to="paid"} 1');
    expect(secondText).not.toContain('to="paid"} 1');
    expect(secondText).toContain('code_pay_webhook_rejections_total{reason="signature"} 1');
    expect(firstText).not.toContain('reason="signature"} 1');
  });

  it('records every metric the kit reports', async () => {
    const metrics = createMetrics({ prefix: 'game_', defaultLabels: { instance: 'eu-1' } });

    metrics.setPurchasesByState({ pending: 3, granted: 7 });
    metrics.observeCreation(0.12);
    metrics.observeConfirmation(42, 'webhook');
    metrics.recordSequencerRequest('getStatus', 'unavailable', 0.5);
    metrics.recordGrantFailure('sword');

    const text = await metrics.render();
    // prom-client orders default labels differently for counters and histograms, so match labels in any order.
    const series = (name: string, labels: string[], value: number): RegExp =>
      new RegExp(`^${name}\\{${labels.map((label) => `(?=[^}]*${label})`).join('')}[^}]*\\} ${value}$`, 'm');
    expect(text).toMatch(series('game_purchases', ['state="granted"', 'instance="eu-1"'], 7));
    expect(text).toMatch(series('game_purchase_creation_seconds_count', ['instance="eu-1"'], 1));
    expect(text).toMatch(series('game_purchase_confirmation_seconds_count', ['source="webhook"', 'instance="eu-1"'], 1));
    expect(text).toMatch(series('game_sequencer_errors_total', ['method="getStatus"', 'code="sequencer_unavailable"'], 1));
    expect(text).toMatch(series('game_grant_failures_total', ['item="sword"', 'instance="eu-1"'], 1));
    expect(metrics.contentType).toContain('text/plain');
  });
});
