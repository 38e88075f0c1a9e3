import type { Server as HttpServer } from 'node:http';
import type { SandboxContext } from './context.js';

export interface MessageStreamOptions {
  /** Path of the WebSocket endpoint; `/v1/ws` by default. */
  path?: string;
}

/**
 * Serves `Messaging.OpenMessageStream` over a WebSocket on the sandbox's HTTP
 * server. Returns a function that closes every open stream.
 */
export function attachMessageStream(
  server: HttpServer,
  context: SandboxContext,
  options: MessageStreamOptions = {},
): () => Promise<void> {
  // TODO: replaced by the message stream implementation.
  void server;
  void context;
  void options;
  return async () => {};
}
