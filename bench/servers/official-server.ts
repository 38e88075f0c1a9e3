// Child process: a minimal server written the way the official Code SDK
// examples are (code-sdk, examples/3-minimal-with-verify): Express, one
// `paymentIntents.create` per request and no store, and a verify route that
// calls `paymentIntents.getStatus` after the browser's redirect. The
// `endpoint` is the sandbox's, because the client's default is Code's
// production service. Config: { endpoint, destination }.

import type { AddressInfo } from 'node:net';

import { paymentIntents } from '@code-wallet/client';
import express from 'express';

import { childConfig, serveParent } from '../lib/child.js';

interface OfficialChildConfig {
  endpoint: string;
  destination: string;
}

const config = childConfig<OfficialChildConfig>();

const app = express();
app.use(express.json());

// The examples create an intent per click with a fixed price. The benchmark
// sends an idempotency key, as a careful integration would, so that a retry
// re-creates the same intent instead of a second one.
app.post('/create-intent', async (request, response) => {
  try {
    const { clientSecret, id } = await paymentIntents.create({
      endpoint: config.endpoint,
      amount: 0.25,
      currency: 'usd',
      destination: config.destination,
      idempotencyKey: typeof request.body?.idempotencyKey === 'string' ? request.body.idempotencyKey : undefined,
    } as never);
    response.send({ clientSecret, id });
  } catch (error) {
    response.status(502).send({ error: String(error) });
  }
});

app.get('/verify/:id', async (request, response) => {
  try {
    const status = await paymentIntents.getStatus({ endpoint: config.endpoint, intent: request.params.id });
    response.send({ intent: request.params.id, status });
  } catch (error) {
    response.status(502).send({ error: String(error) });
  }
});

const server = app.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ type: 'ready', url: `http://127.0.0.1:${port}` });
});
server.keepAliveTimeout = 60_000;

serveParent({
  rss: () => ({ rss: process.memoryUsage().rss }),
  cpu: () => ({ cpu: process.cpuUsage() }),
  close: async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    setImmediate(() => process.exit(0));
    return {};
  },
});
