import { ATTEMPT_ID_PATTERN } from '../protocol/index.js';

/** The part of the Web Storage API the attempt store uses; `localStorage` fits. */
export interface AttemptStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * Consumable attempt ids, one per item, kept in storage that survives a
 * reload or a crash. An attempt id is written before the purchase request
 * leaves the device, reused by every retry of that purchase, and removed once
 * the purchase is granted or failed, so the next purchase of the item starts
 * a new attempt (and a new charge).
 */
export class AttemptStore {
  constructor(
    private readonly storage: AttemptStorage,
    private readonly prefix: string,
  ) {}

  /** Returns the stored attempt id for `itemId`, creating and storing a new one first when there is none. */
  getOrCreate(itemId: string): string {
    const existing = this.get(itemId);
    if (existing) return existing;

    const attemptId = createAttemptId();
    this.storage.setItem(this.key(itemId), attemptId);
    return attemptId;
  }

  /** Returns the stored attempt id for `itemId`, or undefined when none is stored or the stored value is invalid. */
  get(itemId: string): string | undefined {
    const value = this.storage.getItem(this.key(itemId));
    if (value === null || !ATTEMPT_ID_PATTERN.test(value)) return undefined;
    return value;
  }

  /** Removes the attempt id of `itemId` only when it is still `attemptId`, so a newer attempt survives. */
  clear(itemId: string, attemptId: string): void {
    if (this.storage.getItem(this.key(itemId)) === attemptId) {
      this.storage.removeItem(this.key(itemId));
    }
  }

  private key(itemId: string): string {
    return `${this.prefix}attempt:${itemId}`;
  }
}

/**
 * Creates a version 4 UUID. `crypto.randomUUID` exists only in secure
 * contexts (HTTPS or localhost), so a page served over plain HTTP on a LAN
 * address falls back to `crypto.getRandomValues`.
 */
export function createAttemptId(): string {
  if (typeof crypto.randomUUID === 'function') {
    return crypto.randomUUID();
  }

  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Storage that lives only as long as the page, for environments without `localStorage`. */
export class MemoryStorage implements AttemptStorage {
  private readonly values = new Map<string, string>();

  getItem(key: string): string | null {
    return this.values.get(key) ?? null;
  }

  setItem(key: string, value: string): void {
    this.values.set(key, value);
  }

  removeItem(key: string): void {
    this.values.delete(key);
  }
}
