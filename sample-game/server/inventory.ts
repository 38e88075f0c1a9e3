// The game's own tables in the kit's database: what each player holds, and
// which purchases were delivered. The grant handler writes both inside the
// kit's grant transaction, so an item and the purchase's `granted` mark
// commit together or not at all.

import type { StoreTransaction } from '../../server/index.js';
import { SAMPLE_CATALOG } from '../shared/items.js';

/** Runs statements in one transaction of the kit's store. */
export type RunInTransaction = <T>(fn: (tx: StoreTransaction) => Promise<T>) => Promise<T>;

/** The fields of a purchase the grant handler reads. */
export interface GrantedPurchase {
  id: string;
  playerId: string;
  itemId: string;
  kind: 'unique' | 'permanent' | 'consumable';
}

export interface Inventory {
  playerId: string;
  /** Item id → quantity held: 1 for owned upgrades and collectibles, unused packs for consumables. */
  items: Record<string, number>;
  /** Unique items that another player owns. */
  soldOut: string[];
}

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS sample_inventory (
    player_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity >= 0),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (player_id, item_id)
  )`,
  `CREATE TABLE IF NOT EXISTS sample_grants (
    purchase_id TEXT PRIMARY KEY,
    player_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    granted_at BIGINT NOT NULL
  )`,
];

const UNIQUE_ITEM_IDS = SAMPLE_CATALOG.filter((item) => item.kind === 'unique').map((item) => item.id);

/** Creates the game's tables if they do not exist; safe to run on every start. */
export async function migrateInventory(transaction: RunInTransaction): Promise<void> {
  await transaction(async (tx) => {
    for (const statement of SCHEMA) {
      await tx.execute(statement);
    }
  });
}

/**
 * The grant handler: adds the purchased item to the player's inventory. A
 * consumable adds one unused pack per purchase; a permanent or unique item is
 * held once. The `sample_grants` row makes a second call for the same
 * purchase a no-op, although the kit runs the handler once per purchase.
 */
export async function grantItem(purchase: GrantedPurchase, tx: StoreTransaction, now: number = Date.now()): Promise<void> {
  const recorded = await tx.execute(
    'INSERT INTO sample_grants (purchase_id, player_id, item_id, granted_at) VALUES ($1, $2, $3, $4) ON CONFLICT (purchase_id) DO NOTHING',
    [purchase.id, purchase.playerId, purchase.itemId, now],
  );
  if (recorded.rowCount === 0) {
    return;
  }

  if (purchase.kind === 'consumable') {
    await tx.execute(
      `INSERT INTO sample_inventory (player_id, item_id, quantity, updated_at) VALUES ($1, $2, 1, $3)
       ON CONFLICT (player_id, item_id) DO UPDATE SET quantity = sample_inventory.quantity + 1, updated_at = excluded.updated_at`,
      [purchase.playerId, purchase.itemId, now],
    );
    return;
  }

  await tx.execute(
    `INSERT INTO sample_inventory (player_id, item_id, quantity, updated_at) VALUES ($1, $2, 1, $3)
     ON CONFLICT (player_id, item_id) DO UPDATE SET quantity = 1, updated_at = excluded.updated_at`,
    [purchase.playerId, purchase.itemId, now],
  );
}

export async function readInventory(transaction: RunInTransaction, playerId: string): Promise<Inventory> {
  return transaction(async (tx) => {
    const rows = await tx.query<{ item_id: string; quantity: number | string }>(
      'SELECT item_id, quantity FROM sample_inventory WHERE player_id = $1 AND quantity > 0 ORDER BY item_id',
      [playerId],
    );

    const items: Record<string, number> = {};
    for (const row of rows) {
      items[row.item_id] = Number(row.quantity);
    }

    const soldOut: string[] = [];
    for (const itemId of UNIQUE_ITEM_IDS) {
      const owners = await tx.query<{ player_id: string }>(
        'SELECT player_id FROM sample_inventory WHERE item_id = $1 AND quantity > 0 AND player_id <> $2 LIMIT 1',
        [itemId, playerId],
      );
      if (owners.length > 0) {
        soldOut.push(itemId);
      }
    }

    return { playerId, items, soldOut };
  });
}

/**
 * Uses one unit of a consumable. Returns false, changing nothing, when the
 * player has none left.
 */
export async function consumeItem(transaction: RunInTransaction, playerId: string, itemId: string, now: number = Date.now()): Promise<boolean> {
  return transaction(async (tx) => {
    const result = await tx.execute(
      'UPDATE sample_inventory SET quantity = quantity - 1, updated_at = $3 WHERE player_id = $1 AND item_id = $2 AND quantity > 0',
      [playerId, itemId, now],
    );
    return result.rowCount === 1;
  });
}
