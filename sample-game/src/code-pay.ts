// Glue between the Code Pay plugin and the game: the plugin instance and the
// session from the game's registry, and a "granted" signal that fires once
// per purchase that completes while the page is open.

import Phaser from 'phaser';

import {
  CodePayPlugin,
  ENTITLEMENTS_CHANGED,
  PURCHASE_GRANTED,
  PURCHASE_PAID,
  PURCHASE_PENDING,
} from '../../plugin/index.js';
import type { Purchase } from '../../protocol/index.js';
import type { ClientConfig, Session } from './session.js';

export { CodePayPlugin };

const SESSION_KEY = 'session';
const CLIENT_CONFIG_KEY = 'clientConfig';
const ITEM_GRANTED_EVENT = 'sample:item-granted';

export function getSession(scene: Phaser.Scene): Session {
  return scene.registry.get(SESSION_KEY) as Session;
}

export function setSession(game: Phaser.Game, session: Session): void {
  game.registry.set(SESSION_KEY, session);
}

export function getClientConfig(scene: Phaser.Scene): ClientConfig {
  return scene.registry.get(CLIENT_CONFIG_KEY) as ClientConfig;
}

export function setClientConfig(game: Phaser.Game, config: ClientConfig): void {
  game.registry.set(CLIENT_CONFIG_KEY, config);
}

export function getCodePay(scene: Phaser.Scene): CodePayPlugin {
  return (scene as Phaser.Scene & { codePay: CodePayPlugin }).codePay;
}

/**
 * Keeps the session's inventory in step with the plugin: every grant and
 * entitlement change reloads it from the server. A grant of a purchase seen
 * open on this page also emits `sample:item-granted` on the game's events,
 * once per purchase. Grants that a sync reports for purchases completed
 * before the page loaded emit nothing.
 */
export function watchGrants(game: Phaser.Game, codePay: CodePayPlugin, session: Session): void {
  const seenOpen = new Set<string>();
  const announced = new Set<string>();

  const rememberOpen = (purchase: Purchase): void => {
    seenOpen.add(purchase.id);
  };
  codePay.on(PURCHASE_PENDING, rememberOpen);
  codePay.on(PURCHASE_PAID, rememberOpen);

  codePay.on(PURCHASE_GRANTED, (purchase: Purchase) => {
    const announce = seenOpen.has(purchase.id) && !announced.has(purchase.id);
    if (announce) {
      announced.add(purchase.id);
    }

    session.refresh().then(
      () => {
        if (announce) {
          game.events.emit(ITEM_GRANTED_EVENT, purchase.itemId);
        }
      },
      (error: unknown) => console.warn('Could not reload the inventory after a grant', error),
    );
  });

  codePay.on(ENTITLEMENTS_CHANGED, () => {
    session.refresh().catch((error: unknown) => console.warn('Could not reload the inventory', error));
  });
}

/** Calls `listener` with the item id of each purchase granted while the page is open; returns an unsubscribe function. */
export function onPurchaseGranted(scene: Phaser.Scene, listener: (itemId: string) => void): () => void {
  scene.game.events.on(ITEM_GRANTED_EVENT, listener);
  return () => scene.game.events.off(ITEM_GRANTED_EVENT, listener);
}
