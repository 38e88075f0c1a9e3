// A stand-in for the sequencer's `Messaging.OpenMessageStream` WebSocket
// endpoint, for the plugin's stream tests. It decodes the open request and
// verifies its signature against the rendezvous key. A test then pushes
// messages (`codeScanned`, `clientRejectedPayment`, `intentSubmitted`) to the
// stream of one rendezvous key.
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import bs58 from 'bs58';
import { ed25519 } from '@noble/curves/ed25519';
import * as rpc from '@code-wallet/rpc';
import { WebSocketServer, type WebSocket } from 'ws';

export type StreamMessageKind = 'codeScanned' | 'clientRejectedPayment' | 'intentSubmitted';

export class FakeMessageStream {
  readonly http: HttpServer = createServer();
  /** Base58 rendezvous key → open socket. */
  readonly streams = new Map<string, WebSocket>();
  /** Open requests whose signature did not verify, by base58 rendezvous key. */
  readonly rejected: string[] = [];
  /** Base58 rendezvous key → number of streams opened for it. */
  readonly opens = new Map<string, number>();
  private readonly wss = new WebSocketServer({ server: this.http, path: '/v1/ws' });

  constructor() {
    this.wss.on('connection', (socket) => {
      socket.on('message', (data: Buffer) => this.onMessage(socket, new Uint8Array(data)));
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.http.listen(0, '127.0.0.1', resolve));
    const { port } = this.http.address() as AddressInfo;
    return `ws://127.0.0.1:${port}/v1/ws`;
  }

  async close(): Promise<void> {
    for (const socket of this.wss.clients) socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  /** Sends one message to the stream of `rendezvousKey` (base58); false when no such stream is open. */
  send(rendezvousKey: string, kind: StreamMessageKind): boolean {
    const socket = this.streams.get(rendezvousKey);
    if (!socket) return false;

    const value =
      kind === 'codeScanned' ? new rpc.CodeScanned({}) : kind === 'clientRejectedPayment' ? new rpc.ClientRejectedPayment({}) : new rpc.IntentSubmitted({});
    const message = new rpc.Message({ kind: { case: kind, value } as never });
    const body = new rpc.OpenMessageStreamResponse({ messages: [message] }).toBinary();
    socket.send(new rpc.Common.Response({ result: rpc.Common.Response_Result.OK, body }).toBinary());
    return true;
  }

  private onMessage(socket: WebSocket, data: Uint8Array): void {
    const request = rpc.Common.Request.fromBinary(data);
    if (request.service !== 'Messaging' || request.method !== 'openMessageStream') {
      socket.send(new rpc.Common.Response({ result: rpc.Common.Response_Result.ERROR, message: 'unsupported method' }).toBinary());
      return;
    }

    const open = rpc.OpenMessageStreamRequest.fromBinary(request.body);
    const publicKey = open.rendezvousKey?.value ?? new Uint8Array();
    const key = bs58.encode(publicKey);
    const signature = open.signature?.value;
    open.signature = undefined;

    if (!signature || !ed25519.verify(signature, open.toBinary(), publicKey)) {
      this.rejected.push(key);
      socket.send(new rpc.Common.Response({ result: rpc.Common.Response_Result.ERROR, message: 'invalid signature' }).toBinary());
      socket.close();
      return;
    }
    this.streams.set(key, socket);
    this.opens.set(key, (this.opens.get(key) ?? 0) + 1);
  }

  /** Closes the stream of `rendezvousKey`, as a sequencer does when a stream times out. */
  drop(rendezvousKey: string): void {
    this.streams.get(rendezvousKey)?.close();
    this.streams.delete(rendezvousKey);
  }
}
