// Follows an intent on the sequencer's message stream
// (`Messaging.OpenMessageStream` over a WebSocket, through `RpcStream` from
// `@code-wallet/rpc`), so the sheet can show "scanned" and "declined" before
// the server learns of them. Every message is only a hint: the purchase state comes
// from the server.
import { ed25519 } from '@noble/curves/ed25519';
import type { Rendezvous } from './rendezvous.js';

/** Stream messages the sheet reacts to, named as in the protocol's `Message.kind`. */
export type StreamHint = 'codeScanned' | 'clientRejectedPayment' | 'intentSubmitted';

const HINTS: readonly string[] = ['codeScanned', 'clientRejectedPayment', 'intentSubmitted'];

export interface IntentStreamHandlers {
  onHint: (hint: StreamHint) => void;
  /** Called once when the stream fails or closes; the sheet then relies on the server alone. */
  onEnd: (reason: string) => void;
}

/**
 * Opens the stream for the rendezvous key and returns a function that closes
 * it. The open request is signed with the rendezvous private key, which
 * proves the plugin has the intent's client secret.
 */
export async function followIntent(streamUrl: string, rendezvous: Rendezvous, handlers: IntentStreamHandlers): Promise<() => void> {
  const rpc = await import('@code-wallet/rpc');
  let ended = false;
  const end = (reason: string) => {
    if (ended) return;
    ended = true;
    handlers.onEnd(reason);
  };

  const stream = await rpc.RpcStream.create(rpc.Messaging, 'openMessageStream', streamUrl, {
    onClose: () => end('stream closed'),
    onError: () => end('stream error'),
  });

  const request = new rpc.OpenMessageStreamRequest({
    rendezvousKey: new rpc.RendezvousKey({ value: rendezvous.publicKey }),
  });
  const signature = ed25519.sign(request.toBinary(), rendezvous.privateKey);
  request.signature = new rpc.Common.Signature({ value: signature });
  stream.write(request);

  void (async () => {
    for await (const [response, error] of stream.read()) {
      if (ended) break;
      if (error) {
        end(`stream error: ${error.message}`);
        break;
      }
      for (const message of response?.messages ?? []) {
        const kind = message.kind.case;
        if (kind && HINTS.includes(kind)) handlers.onHint(kind as StreamHint);
      }
    }
  })();

  return () => {
    ended = true;
    stream.close();
  };
}
