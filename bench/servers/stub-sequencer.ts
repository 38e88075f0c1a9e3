// Child process: a stub sequencer that accepts every request without checking
// it (no signature verification, no storage). It returns OK for `SendMessage`
// and `RegisterWebhook`, and "exists, not paid" for `GetStatus`. The
// benchmarks use it beside the sandbox to show what the servers under test
// cost when the sequencer is not the bottleneck of a shared 2-core machine.
// Config: {}. Requests: `stats`, `rss`, `cpu`, `close`.

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import * as proto from '@code-wallet/rpc';

import { serveParent } from '../lib/child.js';

const calls: Record<string, number> = {};

function answer(method: string): Uint8Array {
  switch (method) {
    case 'Messaging.sendMessage':
    case 'Messaging.SendMessage':
      return new proto.SendMessageResponse({ result: proto.SendMessageResponse_Result.OK }).toBinary();
    case 'MicroPayment.registerWebhook':
    case 'MicroPayment.RegisterWebhook':
      return new proto.RegisterWebhookResponse({ result: proto.RegisterWebhookResponse_Result.OK }).toBinary();
    case 'MicroPayment.getStatus':
    case 'MicroPayment.GetStatus':
      return new proto.GetStatusResponse({ exists: true, codeScanned: false, intentSubmitted: false }).toBinary();
    default:
      throw new Error(`the stub sequencer does not serve ${method}`);
  }
}

const server = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    let envelope: proto.Common.Response;
    try {
      const call = proto.Common.Request.fromBinary(Buffer.concat(chunks));
      const method = `${call.service}.${call.method}`;
      calls[method] = (calls[method] ?? 0) + 1;
      envelope = new proto.Common.Response({ result: proto.Common.Response_Result.OK, body: answer(method) });
    } catch (error) {
      envelope = new proto.Common.Response({ result: proto.Common.Response_Result.ERROR, message: String((error as Error).message) });
    }
    response.writeHead(200, { 'content-type': 'application/octet-stream' });
    response.end(envelope.toBinary());
  });
});
server.keepAliveTimeout = 60_000;

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  // The kit needs a webhook key; nothing signs webhooks here, so any valid key does.
  process.send?.({ type: 'ready', url, endpoint: `${url}/v1`, publicKey: 'codeHy87wGD5oMRLG75qKqsSi1vWE3oxNyYmXo5F9YR' });
});

serveParent({
  stats: () => ({ stats: { rpc: { ...calls } } }),
  resetStats: () => {
    for (const method of Object.keys(calls)) {
      delete calls[method];
    }
    return {};
  },
  rss: () => ({ rss: process.memoryUsage().rss }),
  cpu: () => ({ cpu: process.cpuUsage() }),
  close: async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    setImmediate(() => process.exit(0));
    return {};
  },
});
