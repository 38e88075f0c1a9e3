// The sandbox wallet page: lists every intent the sandbox stores, updates
// live from the server-sent events at `/wallet/api/events`, and scans, pays
// or declines an intent through the wallet API. The sandbox never receives
// client secrets, so a scan code is drawn only for an intent whose client
// secret the page was given (`/wallet#scan=<clientSecret>` or the form).

import type { SandboxIntent, SandboxIntentEvent } from '../context.js';
import { buildPaymentRequestIntent, drawScanCode, formatAmount, intentIdForClientSecret } from './scan-code.js';
import { listIntents, runWalletAction, type WalletAction } from './wallet-api.js';

const API_BASE = '/wallet/api/';
const SECRETS_STORAGE_KEY = 'sandbox-wallet-client-secrets';

const intents = new Map<string, SandboxIntent>();
/** Client secrets the page was given, by intent id; kept for this browser tab only. */
const clientSecrets = new Map<string, string>(readStoredSecrets());
/** Client secrets that matched no intent yet; matched against intents as they arrive. */
const pendingSecrets = new Set<string>();

const rows = document.getElementById('intents')!;
const statusLine = document.getElementById('status')!;
const scanForm = document.getElementById('scan-form') as HTMLFormElement;
const scanInput = document.getElementById('client-secret') as HTMLInputElement;

scanForm.addEventListener('submit', (event) => {
  event.preventDefault();
  acceptClientSecret(scanInput.value.trim());
});
window.addEventListener('hashchange', readHash);

void start();

async function start(): Promise<void> {
  // Subscribe first, so no event is missed between the list and the subscription.
  let disconnected = false;
  const events = new EventSource(`${API_BASE}events`);
  events.addEventListener('intent', (message) => {
    const event = JSON.parse((message as MessageEvent<string>).data) as SandboxIntentEvent;
    upsert(event.intent);
  });
  events.addEventListener('error', () => {
    disconnected = true;
    setStatus('Live updates disconnected; the browser retries.', true);
  });
  events.addEventListener('open', () => {
    setStatus('Live.');
    if (disconnected) {
      // Events sent while the stream was down are lost, so reload the list.
      disconnected = false;
      void loadIntents();
    }
  });

  await loadIntents();
  readHash();
}

async function loadIntents(): Promise<void> {
  try {
    // Rows are prepended, so adding the oldest first leaves the newest on top.
    const listed = await listIntents(API_BASE);
    listed.sort((left, right) => left.createdAt - right.createdAt);
    for (const intent of listed) {
      upsert(intent);
    }
  } catch (error) {
    setStatus((error as Error).message, true);
  }
}

function readHash(): void {
  const match = /^#scan=(.+)$/.exec(location.hash);
  if (match) {
    acceptClientSecret(decodeURIComponent(match[1]!));
  }
}

/** Finds the intent a client secret belongs to and draws its scan code. */
function acceptClientSecret(clientSecret: string): void {
  if (!clientSecret) {
    return;
  }

  for (const intent of intents.values()) {
    if (intentIdForClientSecret(intent, clientSecret) === intent.intentId) {
      clientSecrets.set(intent.intentId, clientSecret);
      storeSecrets();
      renderRow(intent);
      setStatus(`Scanned the code of intent ${intent.intentId}.`);
      return;
    }
  }

  // The intent may not exist yet; keep the secret and match it when it arrives.
  pendingSecrets.add(clientSecret);
  setStatus('No intent in the sandbox matches this client secret yet.', true);
}

/** How far each status is along the payment, to keep a late, older copy from replacing a newer one. */
const STATUS_RANK: Record<SandboxIntent['status'], number> = { pending: 0, scanned: 1, paid: 2, rejected: 2 };

function isOlder(candidate: SandboxIntent, current: SandboxIntent): boolean {
  if (candidate.updatedAt !== current.updatedAt) {
    return candidate.updatedAt < current.updatedAt;
  }
  return STATUS_RANK[candidate.status] < STATUS_RANK[current.status];
}

function upsert(intent: SandboxIntent): void {
  const current = intents.get(intent.intentId);
  if (current && isOlder(intent, current)) {
    return;
  }
  intents.set(intent.intentId, intent);

  for (const secret of pendingSecrets) {
    if (intentIdForClientSecret(intent, secret) === intent.intentId) {
      pendingSecrets.delete(secret);
      clientSecrets.set(intent.intentId, secret);
      storeSecrets();
    }
  }

  renderRow(intent);
}

function renderRow(intent: SandboxIntent): void {
  let row = rows.querySelector<HTMLTableRowElement>(`tr[data-intent-id="${CSS.escape(intent.intentId)}"]`);
  if (!row) {
    row = document.createElement('tr');
    row.dataset.intentId = intent.intentId;
    rows.prepend(row);
  }

  const isOpen = intent.status === 'pending' || intent.status === 'scanned';
  row.innerHTML = `
    <td class="code"></td>
    <td class="intent-id"><code></code></td>
    <td class="amount"></td>
    <td class="destination"><code></code></td>
    <td class="status"></td>
    <td class="created"></td>
    <td class="actions">
      <button type="button" data-action="scan" ${isOpen && !intent.codeScanned ? '' : 'disabled'}>Scan</button>
      <button type="button" data-action="pay" ${isOpen ? '' : 'disabled'}>Pay</button>
      <button type="button" data-action="reject" ${isOpen ? '' : 'disabled'}>Decline</button>
    </td>`;

  cell(row, '.intent-id code').textContent = intent.intentId;
  cell(row, '.amount').textContent = formatAmount(intent.amount, intent.currency);
  cell(row, '.destination code').textContent = intent.destination;
  cell(row, '.status').textContent = intent.status;
  cell(row, '.created').textContent = new Date(intent.createdAt).toLocaleTimeString();

  for (const button of row.querySelectorAll<HTMLButtonElement>('button[data-action]')) {
    button.addEventListener('click', () => void act(intent.intentId, button.dataset.action as WalletAction));
  }

  const clientSecret = clientSecrets.get(intent.intentId);
  if (clientSecret) {
    void drawScanCode(cell(row, '.code'), buildPaymentRequestIntent(intent, { clientSecret }), 96);
  } else {
    cell(row, '.code').textContent = 'not scanned';
  }
}

async function act(intentId: string, action: WalletAction): Promise<void> {
  try {
    const intent = await runWalletAction(API_BASE, intentId, action);
    upsert(intent);
    setStatus(`Intent ${intentId} is ${intent.status}.`);
  } catch (error) {
    setStatus((error as Error).message, true);
  }
}

function setStatus(text: string, isError = false): void {
  statusLine.textContent = text;
  statusLine.classList.toggle('error', isError);
}

function cell(row: HTMLElement, selector: string): HTMLElement {
  return row.querySelector<HTMLElement>(selector)!;
}

function readStoredSecrets(): [string, string][] {
  try {
    return JSON.parse(sessionStorage.getItem(SECRETS_STORAGE_KEY) ?? '[]') as [string, string][];
  } catch {
    return [];
  }
}

function storeSecrets(): void {
  sessionStorage.setItem(SECRETS_STORAGE_KEY, JSON.stringify([...clientSecrets]));
}
