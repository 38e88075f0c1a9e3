// The shop, an overlay over the paused game. It lists the server's catalog
// with prices, buys through the Code Pay plugin (which opens its payment
// sheet), and shows what the player owns, including a unique item that
// another player owns as sold out.

import Phaser from 'phaser';

import type { CatalogItem } from '../../../protocol/index.js';
import { EXTRA_LIVES, GOLDEN_SHIP, STAR_CROWN } from '../../shared/items.js';
import { createButton, type Button } from '../button.js';
import { getClientConfig, getCodePay, getSession } from '../code-pay.js';
import type { Session } from '../session.js';
import { TEXTURES } from '../textures.js';
import { PLAY_SCENE, type PlayScene } from './PlayScene.js';

export const SHOP_SCENE = 'shop';

const WIDTH = 800;
const HEIGHT = 600;
const PANEL = { x: 80, y: 60, width: 640, height: 480 };
const ROW_HEIGHT = 112;

const TEXT_STYLE = { fontFamily: 'Verdana, sans-serif', color: '#e8ecff' };

/** Messages for the protocol error codes a purchase can end with. */
const ERROR_MESSAGES: Record<string, string> = {
  already_owned: 'You already own this item.',
  sold_out: 'Sold out: another player owns it.',
  reserved: 'Another player is paying for it right now. Try again in a few minutes.',
  rate_limited: 'Too many purchases at once. Wait a moment and try again.',
  sequencer_unavailable: 'The payment service cannot be reached. Try again in a moment.',
  sequencer_rejected: 'The payment service rejected this purchase.',
  unauthenticated: 'Your guest session expired. Reload the page.',
  unknown_item: 'The shop no longer sells this item.',
};

interface ItemRow {
  item: CatalogItem;
  button: Button;
  status: Phaser.GameObjects.Text;
}

export class ShopScene extends Phaser.Scene {
  private session!: Session;
  private rows: ItemRow[] = [];
  private message!: Phaser.GameObjects.Text;
  private buying = new Set<string>();

  constructor() {
    super(SHOP_SCENE);
  }

  create(): void {
    this.session = getSession(this);
    this.rows = [];
    this.buying.clear();

    // The shade takes every pointer event, so nothing reaches the paused game.
    this.add.rectangle(0, 0, WIDTH, HEIGHT, 0x000000, 0.65).setOrigin(0).setInteractive();

    const panel = this.add.graphics();
    panel.fillStyle(0x161c3d, 0.98);
    panel.fillRoundedRect(PANEL.x, PANEL.y, PANEL.width, PANEL.height, 16);
    panel.lineStyle(2, 0x5f7bff, 0.8);
    panel.strokeRoundedRect(PANEL.x, PANEL.y, PANEL.width, PANEL.height, 16);

    this.add.text(PANEL.x + 24, PANEL.y + 18, 'SHOP', { ...TEXT_STYLE, fontSize: '26px' });
    this.add.text(PANEL.x + 110, PANEL.y + 28, 'Paid with Code. Prices in US dollars.', { ...TEXT_STYLE, fontSize: '13px', color: '#9aa6d8' });
    createButton(this, { x: PANEL.x + PANEL.width - 70, y: PANEL.y + 34, width: 110, height: 36, label: 'Close', onClick: () => this.close(), color: 0x555c7a });

    this.addWalletLink();

    this.message = this.add
      .text(WIDTH / 2, PANEL.y + PANEL.height - 24, 'Loading the catalog…', { ...TEXT_STYLE, fontSize: '15px', align: 'center', wordWrap: { width: PANEL.width - 40 } })
      .setOrigin(0.5);

    // Escape closes the shop, but not under an open payment sheet, which has its own cancel button.
    this.input.keyboard?.on('keydown-ESC', () => {
      if (getCodePay(this).sheet === undefined) {
        this.close();
      }
    });
    const stopListening = this.session.onChange(() => this.refreshRows());
    this.events.once(Phaser.Scenes.Events.SHUTDOWN, stopListening);

    void this.loadCatalog();
  }

  /** Adds a link to the sandbox's wallet page, where the player pays or declines without a phone; none without a sandbox. */
  private addWalletLink(): void {
    const walletUrl = getClientConfig(this).sandbox?.walletUrl;
    if (walletUrl === undefined) {
      return;
    }

    const link = this.add
      .text(WIDTH / 2, PANEL.y + PANEL.height - 52, `Sandbox: pay in the test wallet at ${walletUrl} (click to open)`, {
        ...TEXT_STYLE,
        fontSize: '12px',
        color: '#7fb4ff',
      })
      .setOrigin(0.5)
      .setInteractive({ useHandCursor: true });
    link.on('pointerdown', () => window.open(walletUrl, 'code-pay-sandbox-wallet'));
  }

  private async loadCatalog(): Promise<void> {
    let items: CatalogItem[];
    try {
      items = await getCodePay(this).catalog();
    } catch (error) {
      this.showMessage(`Could not load the shop: ${describeError(error)}`, '#ff8a8a');
      return;
    }
    if (!this.scene.isActive()) {
      return;
    }

    items.forEach((item, index) => this.rows.push(this.createRow(item, index)));
    this.showMessage('', '#e8ecff');
    this.refreshRows();
    void this.session.refresh().catch(() => undefined);
  }

  private createRow(item: CatalogItem, index: number): ItemRow {
    const top = PANEL.y + 80 + index * ROW_HEIGHT;

    const divider = this.add.graphics();
    divider.lineStyle(1, 0x2d3766);
    divider.lineBetween(PANEL.x + 20, top + ROW_HEIGHT - 6, PANEL.x + PANEL.width - 20, top + ROW_HEIGHT - 6);

    this.drawIcon(item.id, PANEL.x + 60, top + 44);
    this.add.text(PANEL.x + 110, top + 8, item.name, { ...TEXT_STYLE, fontSize: '19px' });
    this.add.text(PANEL.x + 110, top + 34, kindLabel(item), { ...TEXT_STYLE, fontSize: '12px', color: '#ffc928' });
    this.add.text(PANEL.x + 110, top + 54, item.description ?? '', {
      ...TEXT_STYLE,
      fontSize: '13px',
      color: '#b9c2ea',
      wordWrap: { width: 330 },
    });

    const button = createButton(this, {
      x: PANEL.x + PANEL.width - 90,
      y: top + 34,
      width: 140,
      height: 40,
      label: formatPrice(item),
      onClick: () => void this.buy(item),
      color: 0x2f9e5b,
    });
    const status = this.add
      .text(PANEL.x + PANEL.width - 90, top + 66, '', { ...TEXT_STYLE, fontSize: '12px', color: '#9aa6d8', align: 'center' })
      .setOrigin(0.5, 0);

    return { item, button, status };
  }

  private drawIcon(itemId: string, x: number, y: number): void {
    if (itemId === GOLDEN_SHIP) {
      this.add.image(x, y, TEXTURES.goldenShip);
    } else if (itemId === STAR_CROWN) {
      this.add.image(x, y, TEXTURES.crown).setScale(1.4);
    } else if (itemId === EXTRA_LIVES) {
      this.add.image(x - 14, y + 6, TEXTURES.heart);
      this.add.image(x + 14, y + 6, TEXTURES.heart);
      this.add.image(x, y - 12, TEXTURES.heart);
    } else {
      this.add.image(x, y, TEXTURES.star);
    }
  }

  /** Sets each row's button and status from the inventory and the purchases in progress. */
  private refreshRows(): void {
    for (const { item, button, status } of this.rows) {
      const held = this.session.quantity(item.id);

      if (this.buying.has(item.id)) {
        button.setLabel('Paying…').setEnabled(false);
        status.setText('Scan the code with Code');
      } else if (item.kind === 'consumable') {
        button.setLabel(`Buy ${formatPrice(item)}`).setEnabled(true);
        status.setText(held > 0 ? `You hold ${held} unused` : '');
      } else if (held > 0) {
        button.setLabel(item.kind === 'unique' ? 'Yours!' : 'Owned').setEnabled(false);
        status.setText(item.kind === 'unique' ? 'The only one in the game' : 'Active in every run');
      } else if (item.kind === 'unique' && this.session.isSoldOut(item.id)) {
        button.setLabel('Sold out').setEnabled(false);
        status.setText('Another player owns it');
      } else {
        button.setLabel(`Buy ${formatPrice(item)}`).setEnabled(true);
        status.setText('');
      }
    }
  }

  private async buy(item: CatalogItem): Promise<void> {
    if (this.buying.has(item.id)) {
      return;
    }
    this.buying.add(item.id);
    this.showMessage(`Buying ${item.name}…`, '#e8ecff');
    this.refreshRows();

    try {
      await getCodePay(this).purchase(item.id);
      await this.session.refresh();
      this.showMessage(`${item.name}: paid and delivered. Enjoy!`, '#8df0b0');
    } catch (error) {
      this.showMessage(describeError(error), '#ffb36b');
      await this.session.refresh().catch(() => undefined);
    } finally {
      this.buying.delete(item.id);
      if (this.scene.isActive()) {
        this.refreshRows();
      }
    }
  }

  private showMessage(text: string, color: string): void {
    if (this.message.active) {
      this.message.setText(text).setColor(color);
    }
  }

  private close(): void {
    this.scene.stop();
    this.scene.resume(PLAY_SCENE);
    (this.scene.get(PLAY_SCENE) as PlayScene).resumeFromShop();
  }
}

function formatPrice(item: CatalogItem): string {
  const symbol = item.currency.toLowerCase() === 'usd' ? '$' : `${item.currency.toUpperCase()} `;
  return `${symbol}${item.amount.toFixed(2)}`;
}

function kindLabel(item: CatalogItem): string {
  switch (item.kind) {
    case 'permanent':
      return 'UPGRADE · yours for good';
    case 'consumable':
      return 'PACK · buy as often as you like';
    case 'unique':
      return 'ONE OF A KIND · one owner in the whole game';
  }
}

function describeError(error: unknown): string {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (typeof code === 'string' && code in ERROR_MESSAGES) {
    return ERROR_MESSAGES[code]!;
  }
  if (code === 'closed' || code === 'cancelled') {
    return 'Payment window closed. If you paid, the item still arrives on its own.';
  }
  return error instanceof Error ? error.message : 'The purchase failed.';
}
