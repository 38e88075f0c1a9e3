// The player's guest identity and inventory, both from the game server. The
// token lives in localStorage, so a reload or a later visit keeps the player
// and their items. A token that the server rejects is replaced by a new guest.

const TOKEN_STORAGE_KEY = 'sampleGame:guestToken';

export interface Inventory {
  playerId: string;
  /** Item id → quantity held: 1 for owned upgrades and collectibles, unused packs for consumables. */
  items: Record<string, number>;
  /** Unique items that another player owns. */
  soldOut: string[];
}

/** The server's `GET /api/config`: the in-process sandbox's wallet page, if any. */
export interface ClientConfig {
  sandbox: { walletUrl: string } | null;
}

export async function fetchClientConfig(): Promise<ClientConfig> {
  return readJson<ClientConfig>(await fetch('/api/config'));
}

interface ErrorResponse {
  error?: { code?: string; message?: string };
}

/** An error response of the game server's API, with its protocol error code. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type InventoryListener = (inventory: Inventory) => void;

/** The guest identity and a cached copy of its inventory; listeners hear every change. */
export class Session {
  private inventoryValue: Inventory;
  private readonly listeners = new Set<InventoryListener>();

  private constructor(
    private tokenValue: string,
    inventory: Inventory,
  ) {
    this.inventoryValue = inventory;
  }

  /** Restores the stored guest, or creates a new one when there is none or the server rejects it. */
  static async open(): Promise<Session> {
    const stored = readStoredToken();
    if (stored !== undefined) {
      try {
        return new Session(stored, await fetchInventory(stored));
      } catch (error) {
        if (!(error instanceof ApiError && error.code === 'unauthenticated')) {
          throw error;
        }
      }
    }

    const token = await createGuest();
    writeStoredToken(token);
    return new Session(token, await fetchInventory(token));
  }

  get token(): string {
    return this.tokenValue;
  }

  get playerId(): string {
    return this.inventoryValue.playerId;
  }

  get inventory(): Inventory {
    return this.inventoryValue;
  }

  quantity(itemId: string): number {
    return this.inventoryValue.items[itemId] ?? 0;
  }

  isSoldOut(itemId: string): boolean {
    return this.inventoryValue.soldOut.includes(itemId);
  }

  onChange(listener: InventoryListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async refresh(): Promise<Inventory> {
    this.update(await fetchInventory(this.tokenValue));
    return this.inventoryValue;
  }

  /** Uses one unit of a consumable on the server; rejects with `ApiError` code `not_found` when none is left. */
  async consume(itemId: string): Promise<Inventory> {
    const response = await fetch('/api/inventory/consume', {
      method: 'POST',
      headers: { authorization: `Bearer ${this.tokenValue}`, 'content-type': 'application/json' },
      body: JSON.stringify({ itemId }),
    });
    this.update(await readJson<Inventory>(response));
    return this.inventoryValue;
  }

  private update(inventory: Inventory): void {
    this.inventoryValue = inventory;
    for (const listener of this.listeners) {
      listener(inventory);
    }
  }
}

async function createGuest(): Promise<string> {
  const response = await fetch('/api/guest', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  const body = await readJson<{ playerId: string; token: string }>(response);
  return body.token;
}

async function fetchInventory(token: string): Promise<Inventory> {
  const response = await fetch('/api/inventory', { headers: { authorization: `Bearer ${token}` } });
  return readJson<Inventory>(response);
}

async function readJson<T>(response: Response): Promise<T> {
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const error = (body as ErrorResponse | undefined)?.error;
    throw new ApiError(response.status, error?.code ?? 'internal', error?.message ?? `The game server responded with HTTP ${response.status}.`);
  }
  return body as T;
}

function readStoredToken(): string | undefined {
  try {
    return window.localStorage.getItem(TOKEN_STORAGE_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

function writeStoredToken(token: string): void {
  try {
    window.localStorage.setItem(TOKEN_STORAGE_KEY, token);
  } catch {
    // NOTE: without localStorage (private mode in some browsers) the guest lasts until the page closes.
  }
}
