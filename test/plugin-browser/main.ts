// A one-scene game for the plugin's browser tests. The page is built twice,
// with `phaser` resolving to Phaser 4 or to Phaser 3. The scene below the
// sheet counts pointer presses on a full-size interactive zone, so a test
// can tell whether the sheet let input through. Query parameters: `token`
// (the handshake token) and `flow` (`canvas` or `elements`).
import * as Phaser from 'phaser';
import { CodePayPlugin, type CodePayPluginData, type PaymentSheet } from '../../plugin/index.js';

interface TestState {
  ready: boolean;
  phaserVersion: string;
  pointerDownsBelow: number;
  keyDownsBelow: number;
  result?: { ok: true; purchaseId: string; state: string } | { ok: false; code: string; message: string };
}

const params = new URLSearchParams(location.search);
const state: TestState = { ready: false, phaserVersion: Phaser.VERSION, pointerDownsBelow: 0, keyDownsBelow: 0 };

class MainScene extends Phaser.Scene {
  declare codePay: CodePayPlugin;

  constructor() {
    super('Main');
  }

  create(): void {
    this.add.rectangle(0, 0, 800, 600, 0x335533).setOrigin(0, 0);
    const zone = this.add.zone(0, 0, 800, 600).setOrigin(0, 0).setInteractive();
    zone.on('pointerdown', () => {
      state.pointerDownsBelow += 1;
    });
    this.input.keyboard?.on('keydown', () => {
      state.keyDownsBelow += 1;
    });
    state.ready = true;
  }
}

const data: CodePayPluginData = {
  serverUrl: '',
  auth: params.get('token') ?? 'token-alice',
  flow: params.get('flow') === 'elements' ? 'elements' : 'canvas',
  ackTimeoutMs: 2000,
  grantedCloseDelayMs: 300,
  labels: { cancel: params.get('cancelLabel') ?? 'Cancel' },
};

const game = new Phaser.Game({
  type: Phaser.AUTO,
  width: 800,
  height: 600,
  parent: 'game',
  // The elements sheet lives inside the fullscreen target, so it stays visible in fullscreen.
  scale: { fullscreenTarget: 'game' },
  backgroundColor: '#222222',
  scene: [MainScene],
  plugins: {
    global: [{ key: 'CodePay', plugin: CodePayPlugin, start: true, mapping: 'codePay', data }],
  },
});

function plugin(): CodePayPlugin {
  return game.plugins.get('CodePay') as unknown as CodePayPlugin;
}

/** Test hooks, called through `page.evaluate`. */
const hooks = {
  state,
  game,
  plugin,
  purchase(itemId: string): void {
    state.result = undefined;
    plugin()
      .purchase(itemId)
      .then(
        (purchase) => {
          state.result = { ok: true, purchaseId: purchase.id, state: purchase.state };
        },
        (error: { code: string; message: string }) => {
          state.result = { ok: false, code: error.code, message: error.message };
        },
      );
  },
  /** Status, texts, code image and layout of the open sheet, or null. */
  sheet(): {
    purchaseId: string;
    status: string;
    texts: string[];
    hasCode: boolean;
    panel?: { x: number; y: number; scale: number };
    backdrop?: { width: number; height: number };
  } | null {
    const sheet = plugin().sheet as (PaymentSheet & { sceneKey?: string }) | undefined;
    if (!sheet) return null;

    const scene = sheet.sceneKey ? game.scene.getScene(sheet.sceneKey) : undefined;
    const texts: string[] = [];
    let hasCode = false;
    let panel: { x: number; y: number; scale: number } | undefined;
    let backdrop: { width: number; height: number } | undefined;
    for (const object of scene?.children.list ?? []) {
      if (object instanceof Phaser.GameObjects.Container) panel = { x: object.x, y: object.y, scale: object.scaleX };
      if (object instanceof Phaser.GameObjects.Rectangle) backdrop = { width: object.width, height: object.height };
    }
    const visit = (object: Phaser.GameObjects.GameObject) => {
      if (object instanceof Phaser.GameObjects.Text) texts.push(object.text);
      if (object instanceof Phaser.GameObjects.Image) hasCode = true;
      if (object instanceof Phaser.GameObjects.Container) object.list.forEach(visit);
    };
    scene?.children.list.forEach(visit);
    return { purchaseId: sheet.purchaseId, status: sheet.status, texts, hasCode, panel, backdrop };
  },
};

(window as unknown as { codePayTest: typeof hooks }).codePayTest = hooks;
