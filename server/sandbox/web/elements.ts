// The sandbox's stand-in for the iframe pages that `@code-wallet/elements`
// 2.0.4 loads from `https://sdk.getcode.com/v1/elements/{page}/`. A page
// reads its channel id and the element options from the URL hash, either
// `#/{channelId}/p={options}` or `#/preload/p={options}`. It talks to the
// parent window in the elements channel format, follows the intent's message
// stream and lets the developer pay or decline with the sandbox wallet.

import * as proto from '@code-wallet/rpc';
import { ed25519 } from '@noble/curves/ed25519';
import type { PaymentRequestIntent } from '@code-wallet/intents';
import { buildPaymentRequestIntent, drawScanCode, formatAmount } from './scan-code.js';
import { getIntent, runWalletAction, WalletApiError, type WalletAction } from './wallet-api.js';
import { messageKindsForIntent } from '../stream-messages.js';

/** Element options as the parent encodes them into the hash (the fields this page reads). */
interface ElementOptions {
  mode?: string;
  amount?: number;
  currency?: string;
  destination?: string;
  clientSecret?: string;
  idempotencyKey?: string;
}

/** A message of the elements channel, in either direction. */
interface ChannelMessage {
  id: string;
  type: 'event';
  payload: { event: string; args?: unknown };
}

type PageName = 'button' | 'modal' | 'page';

type MessageStream = proto.RpcStream<typeof proto.Messaging, 'openMessageStream'>;

const root = document.getElementById('app')!;
const pageName = pageNameFromPath(location.pathname);
const route = parseHash(location.hash);

/** Root of the sandbox as seen from this page: `/sdk/` on the sandbox itself, `/` through the sdk.getcode.com mapping. */
const sandboxPrefix = location.pathname.slice(0, location.pathname.indexOf('v1/elements/'));
const walletApiBase = `${sandboxPrefix}wallet/api/`;

/**
 * Stream URLs the page tries, in order: its own origin, as Code's pages use,
 * then the sandbox's own URL from the page's `sandbox-url` meta tag, for
 * pages loaded through an sdk.getcode.com mapping that does not carry
 * WebSockets.
 */
const streamUrls = [
  ...new Set([
    `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${sandboxPrefix}v1/ws`,
    sandboxStreamUrl(),
  ]),
].filter((url): url is string => url !== undefined);

/** Values the parent sent with `updated…` events; they replace the hash options on `afterInvoke`. */
const updates: { clientSecret?: string; idempotencyKey?: string } = {};

let currentIntent: PaymentRequestIntent | undefined;
let stream: MessageStream | undefined;
let finished = false;
/** True while the page follows the intent by polling, because no message stream connected. */
let polling = false;

const POLL_INTERVAL_MS = 500;

// The parent posts its first events right after this iframe's load event, so
// the listener is registered while the module runs, before that event.
window.addEventListener('message', onParentMessage);

render();

function render(): void {
  if (route.error) {
    showError(route.error);
    return;
  }

  if (pageName === 'button') {
    renderButton();
    return;
  }

  renderRequestCard();
}

function renderButton(): void {
  const button = document.createElement('button');
  button.type = 'button';
  button.id = 'invoke';
  button.className = 'code-button';
  button.textContent = 'Pay with Code (sandbox)';
  button.addEventListener('click', () => post('invoke'));
  root.replaceChildren(button);

  post('resize', { width: button.offsetWidth, height: button.offsetHeight });
}

function renderRequestCard(): void {
  const { options } = route;
  const card = document.createElement('div');
  card.className = 'card';
  card.innerHTML = `
    <h1>Scan with the Code Wallet app to pay</h1>
    <p class="amount" id="amount"></p>
    <div class="code" id="code"><p class="hint">The scan code appears when the payment starts.</p></div>
    <p class="status" id="status" role="status">${route.channelId ? 'Waiting for the payment to start.' : 'Preloaded.'}</p>
    <div class="actions">
      <button type="button" id="pay" disabled>Pay with sandbox wallet</button>
      <button type="button" id="decline" disabled>Decline in sandbox wallet</button>
      ${pageName === 'modal' ? '<button type="button" id="close">Close</button>' : ''}
    </div>
    <p class="intent" id="intent"></p>`;
  root.replaceChildren(card);

  if (options.amount !== undefined && options.currency) {
    byId('amount').textContent = formatAmount(options.amount, options.currency);
  }

  byId('pay').addEventListener('click', () => void walletAction('pay'));
  byId('decline').addEventListener('click', () => void walletAction('reject'));
  document.getElementById('close')?.addEventListener('click', () => {
    // Code's modal reports a closed dialog as a declined payment.
    post('clientRejectedPayment');
    finished = true;
    closeStream();
  });

  // Draw the code from the hash options when they already name the intent,
  // as Code's pages do while they wait for `afterInvoke`.
  const intent = buildIntent(options);
  if (intent) {
    void drawScanCode(byId('code'), intent);
  }
}

function onParentMessage(event: MessageEvent): void {
  if (event.source !== window.parent || !route.channelId || !isChannelMessage(event.data, route.channelId)) {
    return;
  }

  const { event: name, args } = event.data.payload;
  const value = (args as { value?: unknown } | undefined)?.value;

  switch (name) {
    case 'updatedClientSecret':
      if (typeof value === 'string') {
        updates.clientSecret = value;
      }
      break;
    case 'updatedIdempotencyKey':
      if (typeof value === 'string') {
        updates.idempotencyKey = value;
      }
      break;
    case 'beforeInvoke':
      setStatus('Starting the payment.');
      break;
    case 'afterInvoke':
      void startPayment();
      break;
    default:
      // `updatedSuccessUrl` and `updatedCancelUrl` only matter to the parent's navigation.
      break;
  }
}

/** Builds the intent from the options and the parent's updates, draws its code and follows its stream. */
async function startPayment(): Promise<void> {
  if (pageName === 'button') {
    return;
  }

  const options: ElementOptions = { ...route.options };
  if (updates.clientSecret) {
    options.clientSecret = updates.clientSecret;
    delete options.idempotencyKey;
  } else if (updates.idempotencyKey) {
    options.idempotencyKey = updates.idempotencyKey;
    delete options.clientSecret;
  }

  const intent = buildIntent(options);
  if (!intent) {
    reportError('the element options name no intent: pass clientSecret (or idempotencyKey) with amount, currency and destination');
    return;
  }

  currentIntent = intent;
  byId('intent').textContent = `Intent ${intent.getIntentId()}`;
  await drawScanCode(byId('code'), intent);
  setStatus('Waiting for the wallet.');

  try {
    await createIntentIfMissing(intent);
  } catch (error) {
    reportError((error as Error).message);
    return;
  }

  try {
    await openStream(intent);
  } catch (error) {
    // NOTE: Playwright 1.65's routeWebSocket does not reach cross-origin iframes, and Chromium 156's
    // local network access checks block a mapped https page from ws://127.0.0.1, so a
    // page loaded through an sdk.getcode.com mapping polls the wallet API instead.
    console.warn(`sandbox: ${(error as Error).message}; polling the wallet API for the intent's state`);
    pollIntent(intent.getIntentId());
  }

  byId<HTMLButtonElement>('pay').disabled = false;
  byId<HTMLButtonElement>('decline').disabled = false;
}

/**
 * Sends the payment request to the sequencer when `GetStatus` reports that
 * it does not exist, as Code's pages do, so an element given only an
 * idempotency key in the browser still works.
 */
async function createIntentIfMissing(intent: PaymentRequestIntent): Promise<void> {
  const statusRequest = new proto.GetStatusRequest({
    intentId: { value: intent.rendezvousKeypair.getPublicKey().value },
  });
  const status = proto.GetStatusResponse.fromBinary(
    await callUnary('MicroPayment', 'getStatus', statusRequest.toBinary()),
  );
  if (status.exists) {
    return;
  }

  const sendRequest = await intent.getSendMessageRequestProto();
  const sent = proto.SendMessageResponse.fromBinary(await callUnary('Messaging', 'sendMessage', sendRequest.toBinary()));
  if (sent.result !== proto.SendMessageResponse_Result.OK) {
    throw new Error(`creating the intent failed: SendMessage returned ${proto.SendMessageResponse_Result[sent.result]}`);
  }
}

/** Calls a unary RPC through the page's own origin and returns the response body. */
async function callUnary(service: string, method: string, body: Uint8Array): Promise<Uint8Array> {
  const request = new proto.Common.Request({ service, method, body });
  const response = await fetch(`${sandboxPrefix}v1/api/`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: request.toBinary() as BodyInit,
  });
  if (!response.ok) {
    throw new Error(`${service}.${method} failed: HTTP ${response.status}`);
  }

  const envelope = proto.Common.Response.fromBinary(new Uint8Array(await response.arrayBuffer()));
  if (envelope.result !== proto.Common.Response_Result.OK) {
    throw new Error(`${service}.${method} failed: ${envelope.message}`);
  }
  return envelope.body;
}

/** Opens the intent's message stream, signed with the rendezvous key, and relays its messages to the parent. */
async function openStream(intent: PaymentRequestIntent): Promise<void> {
  closeStream();

  const opened = await connectStream();
  stream = opened;

  const request = new proto.OpenMessageStreamRequest({
    rendezvousKey: new proto.RendezvousKey({ value: intent.rendezvousKeypair.getPublicKey().value }),
  });
  const signature = ed25519.sign(request.toBinary(), intent.rendezvousKeypair.getPrivateValue());
  request.signature = new proto.Common.Signature({ value: signature });
  opened.write(request);

  void readStream(opened);
}

/** Connects to the first stream URL that accepts a WebSocket. */
async function connectStream(): Promise<MessageStream> {
  const failures: string[] = [];

  for (const url of streamUrls) {
    try {
      const opened: MessageStream = await proto.RpcStream.create(proto.Messaging, 'openMessageStream', url, {
        onClose: () => {
          if (stream === opened && !finished) {
            post('streamClosed');
            setStatus('The message stream closed.');
          }
        },
      });
      return opened;
    } catch {
      // RpcStream rejects with the WebSocket's error event, which carries no message.
      failures.push(url);
    }
  }

  throw new Error(`no WebSocket connection to ${failures.join(' or ')}`);
}

/** Follows the intent through the wallet API and reports the messages its state implies, each once. */
function pollIntent(intentId: string): void {
  const reported = new Set<string>();
  polling = true;

  const poll = async (): Promise<void> => {
    if (!polling || currentIntent?.getIntentId() !== intentId) {
      return;
    }

    try {
      const intent = await getIntent(walletApiBase, intentId);
      for (const kind of intent ? messageKindsForIntent(intent) : []) {
        if (!reported.has(kind)) {
          reported.add(kind);
          onStreamMessage(kind);
        }
      }
    } catch (error) {
      setStatus((error as Error).message, true);
    }

    if (polling) {
      setTimeout(() => void poll(), POLL_INTERVAL_MS);
    }
  };

  void poll();
}

async function readStream(opened: MessageStream): Promise<void> {
  for await (const [response, error] of opened.read()) {
    if (stream !== opened) {
      return;
    }

    if (error) {
      reportError(error.message);
      return;
    }

    const messages = response?.messages ?? [];
    for (const message of messages) {
      onStreamMessage(message.kind.case);
    }
  }
}

function onStreamMessage(kind: string | undefined): void {
  if (!kind) {
    return;
  }

  // Code's pages forward every message kind to the parent, and the element handles the kinds it expects.
  post(kind);

  switch (kind) {
    case 'codeScanned':
      setStatus('Scanned. Confirm the payment in the wallet.');
      break;
    case 'intentSubmitted':
      finish('Paid.');
      break;
    case 'clientRejectedPayment':
      finish('Declined in the wallet.');
      break;
  }
}

async function walletAction(action: WalletAction): Promise<void> {
  if (!currentIntent) {
    return;
  }
  const intentId = currentIntent.getIntentId();

  try {
    await scanUnlessScanned(intentId);
    await runWalletAction(walletApiBase, intentId, action);
  } catch (error) {
    setStatus((error as Error).message, true);
  }
}

/** Scans first, as a real wallet does before it pays or declines; a 409 means it is past that step. */
async function scanUnlessScanned(intentId: string): Promise<void> {
  try {
    await runWalletAction(walletApiBase, intentId, 'scan');
  } catch (error) {
    if (!(error instanceof WalletApiError && error.status === 409)) {
      throw error;
    }
  }
}

function finish(status: string): void {
  finished = true;
  setStatus(status);
  byId<HTMLButtonElement>('pay').disabled = true;
  byId<HTMLButtonElement>('decline').disabled = true;
  closeStream();
}

function closeStream(): void {
  polling = false;
  const open = stream;
  stream = undefined;
  open?.close();
}

function reportError(message: string): void {
  setStatus(message, true);
  post('error', message);
}

function post(event: string, args?: unknown): void {
  if (!route.channelId || window.parent === window) {
    return;
  }

  const message: ChannelMessage = { id: route.channelId, type: 'event', payload: { event, args } };
  window.parent.postMessage(message, '*');
}

function setStatus(text: string, isError = false): void {
  const status = document.getElementById('status');
  if (status) {
    status.textContent = text;
    status.classList.toggle('error', isError);
  }
}

function showError(message: string): void {
  root.innerHTML = '<p class="status error" id="status" role="alert"></p>';
  byId('status').textContent = message;
}

function buildIntent(options: ElementOptions): PaymentRequestIntent | undefined {
  if (!options.destination || options.amount === undefined || !options.currency) {
    return undefined;
  }

  const fields = { destination: options.destination, amount: options.amount, currency: options.currency };

  try {
    if (options.clientSecret) {
      return buildPaymentRequestIntent(fields, { clientSecret: options.clientSecret });
    }
    if (options.idempotencyKey) {
      return buildPaymentRequestIntent(fields, { idempotencyKey: options.idempotencyKey });
    }
  } catch (error) {
    setStatus(`invalid element options: ${(error as Error).message}`, true);
  }
  return undefined;
}

function sandboxStreamUrl(): string | undefined {
  const content = document.querySelector<HTMLMetaElement>('meta[name="sandbox-url"]')?.content;
  if (!content) {
    return undefined;
  }

  const url = new URL('v1/ws', content.endsWith('/') ? content : `${content}/`);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

function pageNameFromPath(pathname: string): PageName {
  if (pathname.includes('-request-button')) {
    return 'button';
  }
  return pathname.includes('-request-page-') ? 'page' : 'modal';
}

function parseHash(hash: string): { channelId?: string; options: ElementOptions; error?: string } {
  const match = /^#\/([^/]+)\/p=(.*)$/.exec(hash);
  if (!match) {
    return { options: {}, error: 'invalid page address: expected #/{channelId}/p={options} in the URL hash' };
  }

  const channelId = match[1] === 'preload' ? undefined : match[1];

  try {
    const options = JSON.parse(atob(decodeURIComponent(match[2]!))) as ElementOptions;
    return { channelId, options };
  } catch (error) {
    return { channelId, options: {}, error: `invalid element options in the URL hash: ${(error as Error).message}` };
  }
}

function isChannelMessage(data: unknown, channelId: string): data is ChannelMessage {
  const message = data as Partial<ChannelMessage> | null;
  return message?.type === 'event' && message.id === channelId && typeof message.payload?.event === 'string';
}

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}
