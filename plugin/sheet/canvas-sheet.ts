// The `canvas` flow: a payment sheet drawn by Phaser in a scene of its own
// on top of the game. It shows the item, the price, the intent's scan code
// and a live status, and blocks input to every scene below while it is open.
//
// It uses only the scene and game object factories (`scene.add.*`), never a
// Phaser class imported at runtime, so it runs under the Phaser 3 or Phaser 4
// build the game itself loaded.
import type Phaser from 'phaser';
import type { Logger } from 'pino';
import type { Purchase } from '../../protocol/index.js';
import { isEndStatus, type SheetLabels, type SheetStatus } from './labels.js';
import type { StreamHint } from './intent-stream.js';
import { statusForState, type PaymentSheet, type SheetContext } from './sheet.js';

export interface CanvasSheetOptions {
  labels: SheetLabels;
  /** WebSocket URL of the sequencer's message stream, when known. */
  streamUrl?: string;
  /** CSS font family of every text on the sheet. */
  fontFamily: string;
  log: Logger;
}

/** Size of the panel in its own units; the whole panel is scaled to fit the game. */
const PANEL_WIDTH = 360;
const PANEL_HEIGHT = 540;
const CODE_SIZE = 260;

let sheetCount = 0;

export class CanvasSheet implements PaymentSheet {
  readonly purchaseId: string;
  /** Key of the scene the sheet runs in; unique per sheet. */
  readonly sceneKey: string;

  private currentStatus: SheetStatus = 'loading';
  private purchase: Purchase;
  private scene: Phaser.Scene | undefined;
  private panel: Phaser.GameObjects.Container | undefined;
  private backdrop: Phaser.GameObjects.Rectangle | undefined;
  private statusText: Phaser.GameObjects.Text | undefined;
  private buttonText: Phaser.GameObjects.Text | undefined;
  private codeImage: Phaser.GameObjects.Image | undefined;
  private textureKey: string;
  private closed = false;
  private closeStream: (() => void) | undefined;
  private openStream: (() => Promise<() => void>) | undefined;
  private streamTimer: ReturnType<typeof setTimeout> | undefined;
  private streamRestarts = 0;
  private readonly disabledInputs: { input: Phaser.Input.InputPlugin; enabled: boolean; keyboard: boolean | undefined }[] = [];
  private readonly onResize = () => this.layout();

  constructor(
    private readonly game: Phaser.Game,
    private readonly context: SheetContext,
    private readonly options: CanvasSheetOptions,
  ) {
    this.purchase = context.purchase;
    this.purchaseId = context.purchase.id;
    sheetCount += 1;
    this.sceneKey = `CodePaySheet${sheetCount}`;
    this.textureKey = `${this.sceneKey}-code`;
    this.currentStatus = statusForState(this.purchase.state) === 'waiting' ? 'loading' : statusForState(this.purchase.state);
  }

  get status(): SheetStatus {
    return this.currentStatus;
  }

  /** Adds the sheet's scene on top of every other scene and starts drawing the scan code. */
  open(): void {
    const sheet = this;
    this.game.scene.add(
      this.sceneKey,
      {
        create(this: Phaser.Scene) {
          sheet.build(this);
        },
      },
      true,
    );
  }

  update(purchase: Purchase): void {
    if (purchase.id !== this.purchaseId || this.closed) return;
    this.purchase = purchase;

    const status = statusForState(purchase.state);
    // The status stays "loading" until the scan code is drawn, and a pending update does not undo "scanned".
    if (status === 'waiting' && (this.currentStatus === 'loading' || this.currentStatus === 'scanned')) return;
    this.setStatus(status);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;

    clearTimeout(this.streamTimer);
    this.closeStream?.();
    this.restoreInput();
    this.game.scale.off('resize', this.onResize);
    if (this.game.textures.exists(this.textureKey)) this.game.textures.remove(this.textureKey);
    this.game.scene.remove(this.sceneKey);
  }

  private build(scene: Phaser.Scene): void {
    this.scene = scene;
    if (this.closed) {
      this.game.scene.remove(this.sceneKey);
      return;
    }

    this.blockInputBelow(scene);

    const { labels, fontFamily } = this.options;
    const { item } = this.context;

    // The backdrop is interactive, so pointer events stop here instead of reaching the scenes below.
    this.backdrop = scene.add.rectangle(0, 0, 1, 1, 0x000000, 0.65).setOrigin(0, 0).setInteractive();

    const background = scene.add.graphics();
    background.fillStyle(0x1c1c22, 1);
    background.fillRoundedRect(-PANEL_WIDTH / 2, -PANEL_HEIGHT / 2, PANEL_WIDTH, PANEL_HEIGHT, 18);

    const title = scene.add
      .text(0, -PANEL_HEIGHT / 2 + 30, labels.title, { fontFamily, fontSize: '18px', color: '#a0a0b0' })
      .setOrigin(0.5, 0.5);
    const name = scene.add
      .text(0, -PANEL_HEIGHT / 2 + 62, item.name, { fontFamily, fontSize: '26px', color: '#ffffff' })
      .setOrigin(0.5, 0.5);
    const price = scene.add
      .text(0, -PANEL_HEIGHT / 2 + 96, labels.formatPrice(this.purchase.amount, this.purchase.currency), {
        fontFamily,
        fontSize: '22px',
        color: '#ffffff',
      })
      .setOrigin(0.5, 0.5);

    const codeCenterY = -PANEL_HEIGHT / 2 + 120 + CODE_SIZE / 2;
    const placeholder = scene.add.graphics();
    placeholder.fillStyle(0x45464e, 1);
    placeholder.fillCircle(0, codeCenterY, CODE_SIZE / 2);

    this.statusText = scene.add
      .text(0, PANEL_HEIGHT / 2 - 110, '', {
        fontFamily,
        fontSize: '18px',
        color: '#ffffff',
        align: 'center',
        wordWrap: { width: PANEL_WIDTH - 40 },
      })
      .setOrigin(0.5, 0.5);

    const button = scene.add.rectangle(0, PANEL_HEIGHT / 2 - 48, 200, 48, 0x3a3a46, 1).setInteractive({ useHandCursor: true });
    this.buttonText = scene.add.text(0, PANEL_HEIGHT / 2 - 48, '', { fontFamily, fontSize: '20px', color: '#ffffff' }).setOrigin(0.5, 0.5);
    button.on('pointerup', () => this.closeByPlayer());

    this.panel = scene.add.container(0, 0, [background, title, name, price, placeholder, this.statusText, button, this.buttonText]);

    this.game.scale.on('resize', this.onResize);
    this.layout();
    this.render();

    void this.drawScanCode(scene, codeCenterY);
  }

  private async drawScanCode(scene: Phaser.Scene, centerY: number): Promise<void> {
    try {
      // Loaded on the first sheet, so games that never open one do not download the encoder, ed25519 or protobuf code.
      const [{ deriveRendezvous }, { renderScanCodeSvg }, { followIntent }] = await Promise.all([
        import('./rendezvous.js'),
        import('./scan-code.js'),
        import('./intent-stream.js'),
      ]);
      const rendezvous = await deriveRendezvous(this.purchase);
      if (rendezvous.intentId !== this.purchase.intentId) {
        // A mismatch means the wallet would pay a different intent than the server follows.
        this.options.log.error(
          { purchaseId: this.purchaseId, intentId: this.purchase.intentId, derivedIntentId: rendezvous.intentId },
          'code-pay: the scan code does not match the purchase intent; not showing it',
        );
        this.setStatus('error');
        return;
      }

      const svg = await renderScanCodeSvg(rendezvous);
      const image = await loadImage(`data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`);
      if (this.closed) return;

      this.game.textures.addImage(this.textureKey, image);
      this.codeImage = scene.add.image(0, centerY, this.textureKey).setDisplaySize(CODE_SIZE, CODE_SIZE);
      this.panel?.add(this.codeImage);
      if (this.currentStatus === 'loading') this.setStatus(statusForState(this.purchase.state));

      if (this.options.streamUrl) {
        const streamUrl = this.options.streamUrl;
        void this.followStream(() => followIntent(streamUrl, rendezvous, {
          onHint: (hint) => this.onStreamHint(hint),
          onEnd: (reason) => this.onStreamEnd(reason),
        }));
      }
    } catch (error) {
      this.options.log.error(
        { purchaseId: this.purchaseId, intentId: this.purchase.intentId, err: { message: error instanceof Error ? error.message : String(error) } },
        'code-pay: could not draw the scan code',
      );
      if (this.currentStatus === 'loading') this.setStatus('error');
    }
  }

  /**
   * Opens the intent's stream and opens it again after it ends, with a delay
   * doubling from 1 s to 30 s, while the sheet is open and the purchase can
   * still be paid. Sequencers end streams after a while (code-server's
   * `OpenMessageStream` has a timeout without keep-alive), and a failed
   * stream only costs the early hints, because the server reports the state.
   */
  private async followStream(open: () => Promise<() => void>): Promise<void> {
    this.openStream = open;
    try {
      const close = await open();
      if (this.closed) {
        close();
        return;
      }
      this.closeStream = close;
    } catch (error) {
      this.onStreamEnd(`stream failed to open: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private onStreamEnd(reason: string): void {
    this.closeStream = undefined;
    if (this.closed || isEndStatus(this.currentStatus) || this.currentStatus === 'paid') return;

    const delayMs = Math.min(30_000, 1000 * 2 ** this.streamRestarts);
    this.streamRestarts += 1;
    this.options.log.info({ purchaseId: this.purchaseId, reason, delayMs }, 'code-pay: intent stream ended, opening it again');
    clearTimeout(this.streamTimer);
    this.streamTimer = setTimeout(() => {
      if (this.openStream && !this.closed) void this.followStream(this.openStream);
    }, delayMs);
  }

  private onStreamHint(hint: StreamHint): void {
    if (this.closed || isEndStatus(this.currentStatus) || this.currentStatus === 'paid') return;

    if (hint === 'codeScanned') this.setStatus('scanned');
    if (hint === 'clientRejectedPayment') {
      this.setStatus('declined');
      this.context.onDeclineHint();
    }
    if (hint === 'intentSubmitted') this.context.onPaymentHint();
  }

  private setStatus(status: SheetStatus): void {
    this.currentStatus = status;
    this.render();
  }

  private render(): void {
    if (!this.statusText || !this.buttonText) return;

    const { labels } = this.options;
    this.statusText.setText(labels[this.currentStatus]);
    this.buttonText.setText(isEndStatus(this.currentStatus) ? labels.close : labels.cancel);
  }

  /** Fits the backdrop to the game size and the panel inside 90% of it; runs again on every Scale Manager resize. */
  private layout(): void {
    if (!this.panel || !this.backdrop) return;

    const { width, height } = this.game.scale;
    this.backdrop.setSize(width, height);
    if (this.backdrop.input?.hitArea) {
      (this.backdrop.input.hitArea as Phaser.Geom.Rectangle).setTo(0, 0, width, height);
    }

    const scale = Math.min((width * 0.9) / PANEL_WIDTH, (height * 0.9) / PANEL_HEIGHT, 2);
    this.panel.setPosition(width / 2, height / 2).setScale(scale);
  }

  private closeByPlayer(): void {
    if (this.closed) return;
    this.close();
    this.context.onClosedByPlayer();
  }

  /** Turns off pointer and keyboard input of every other running scene until the sheet closes. */
  private blockInputBelow(sheetScene: Phaser.Scene): void {
    for (const scene of this.game.scene.getScenes(true)) {
      if (scene === sheetScene || !scene.input) continue;
      this.disabledInputs.push({ input: scene.input, enabled: scene.input.enabled, keyboard: scene.input.keyboard?.enabled });
      scene.input.enabled = false;
      if (scene.input.keyboard) scene.input.keyboard.enabled = false;
    }
  }

  private restoreInput(): void {
    for (const { input, enabled, keyboard } of this.disabledInputs.splice(0)) {
      input.enabled = enabled;
      if (input.keyboard && keyboard !== undefined) input.keyboard.enabled = keyboard;
    }
  }
}

function loadImage(source: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error('the scan code image failed to load'));
    image.src = source;
  });
}
