// The page of the frame time benchmark (bench/frame-time.ts): a Phaser scene
// with 300 moving, rotating sprites and the plugin, served by the kit on the
// same origin. It records, for each frame, the main-thread time from
// Phaser's `prestep` event to its `postrender` event (the game's step:
// scene updates and the renderer's draw calls) and the interval between
// frames. Query parameter `renderer`: `canvas` or `webgl`.
import * as Phaser from 'phaser';

import { CodePayPlugin, type CodePayPluginData } from '../../plugin/index.js';

const params = new URLSearchParams(location.search);
const SPRITES = 300;

interface FrameWindow {
  stepMs: number[];
  intervalMs: number[];
}

let recording: FrameWindow | undefined;
let stepStartedAt = 0;
let previousStepAt = 0;

class BusyScene extends Phaser.Scene {
  private sprites: Phaser.GameObjects.Rectangle[] = [];

  constructor() {
    super('Busy');
  }

  create(): void {
    for (let i = 0; i < SPRITES; i++) {
      const sprite = this.add.rectangle((i * 37) % 800, (i * 53) % 600, 24, 24, 0x4488ff + i * 97);
      this.sprites.push(sprite);
    }
    state.ready = true;
  }

  override update(time: number): void {
    for (let i = 0; i < this.sprites.length; i++) {
      const sprite = this.sprites[i];
      sprite.rotation = time / 500 + i;
      sprite.x = (sprite.x + 1 + (i % 3)) % 800;
    }
  }
}

const data: CodePayPluginData = {
  serverUrl: location.origin,
  auth: 'bench-frame-player',
  flow: 'canvas',
};

const game = new Phaser.Game({
  type: params.get('renderer') === 'canvas' ? Phaser.CANVAS : Phaser.WEBGL,
  width: 800,
  height: 600,
  parent: 'game',
  backgroundColor: '#222222',
  scene: [BusyScene],
  plugins: {
    global: [{ key: 'CodePay', plugin: CodePayPlugin, start: true, mapping: 'codePay', data }],
  },
});

game.events.on('prestep', () => {
  const now = performance.now();
  if (recording && previousStepAt > 0) {
    recording.intervalMs.push(now - previousStepAt);
  }
  previousStepAt = now;
  stepStartedAt = now;
});
game.events.on('postrender', () => {
  recording?.stepMs.push(performance.now() - stepStartedAt);
});

const state = { ready: false, renderer: '' };

/** A scene with only the sheet's translucent full-screen backdrop, to tell its cost from the rest of the sheet's. */
class OverlayScene extends Phaser.Scene {
  constructor() {
    super('Overlay');
  }

  create(): void {
    this.add.rectangle(0, 0, 800, 600, 0x000000, 0.65).setOrigin(0, 0);
  }
}

function plugin(): CodePayPlugin {
  return game.plugins.get('CodePay') as unknown as CodePayPlugin;
}

/** Hooks the benchmark calls through `page.evaluate`. */
const hooks = {
  state,
  rendererType: () => (game.renderer.type === Phaser.CANVAS ? 'canvas' : 'webgl'),
  /** Requests the permanent item and resolves once the sheet shows its scan code. */
  async openSheet(): Promise<string> {
    plugin()
      .purchase('laser')
      .catch(() => undefined);
    const startedAt = performance.now();
    while (performance.now() - startedAt < 20_000) {
      const sheet = plugin().sheet as { status: string; sceneKey?: string } | undefined;
      const scene = sheet?.sceneKey ? game.scene.getScene(sheet.sceneKey) : undefined;
      const hasCode = scene?.children.list.some(
        (object) => object instanceof Phaser.GameObjects.Container && object.list.some((child) => child instanceof Phaser.GameObjects.Image),
      );
      if (sheet?.status === 'waiting' && hasCode) {
        return sheet.status;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('the payment sheet did not show its scan code within 20 s');
  },
  /** Closes the sheet from code, as the plugin does on destroy; the purchase stays open on the server. */
  closeSheet(): void {
    (plugin() as unknown as { closeSheet(): void }).closeSheet();
  },
  sheetOpen: () => plugin().sheet !== undefined,
  openOverlay(): void {
    game.scene.add('Overlay', OverlayScene, true);
  },
  closeOverlay(): void {
    game.scene.remove('Overlay');
  },
  /** Records frames for `ms` and returns their step times and intervals. */
  async record(ms: number): Promise<FrameWindow> {
    recording = { stepMs: [], intervalMs: [] };
    await new Promise((resolve) => setTimeout(resolve, ms));
    const window = recording;
    recording = undefined;
    return window;
  },
};

(window as unknown as { codePayBench: typeof hooks }).codePayBench = hooks;
