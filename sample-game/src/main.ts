// Entry of the game client: restores or creates the guest, then boots Phaser
// with the Code Pay plugin connected to the game server that served the page.

import Phaser from 'phaser';

import { CodePayPlugin, setClientConfig, setSession } from './code-pay.js';
import { BootScene } from './scenes/BootScene.js';
import { PlayScene } from './scenes/PlayScene.js';
import { ShopScene } from './scenes/ShopScene.js';
import { fetchClientConfig, Session } from './session.js';

/** `?flow=elements` shows Code's official payment page instead of the in-canvas sheet. */
function paymentFlow(): 'canvas' | 'elements' {
  return new URLSearchParams(window.location.search).get('flow') === 'elements' ? 'elements' : 'canvas';
}

async function boot(): Promise<void> {
  const [config, session] = await Promise.all([fetchClientConfig(), Session.open()]);

  const game = new Phaser.Game({
    type: Phaser.AUTO,
    parent: 'game',
    width: 800,
    height: 600,
    backgroundColor: '#0b1026',
    scale: { mode: Phaser.Scale.FIT, autoCenter: Phaser.Scale.CENTER_BOTH },
    physics: { default: 'arcade', arcade: { debug: false } },
    plugins: {
      global: [
        {
          key: 'CodePay',
          plugin: CodePayPlugin,
          start: true,
          mapping: 'codePay',
          data: {
            serverUrl: window.location.origin,
            auth: () => session.token,
            flow: paymentFlow(),
          },
        },
      ],
    },
    scene: [BootScene, PlayScene, ShopScene],
  });
  setSession(game, session);
  setClientConfig(game, config);

  // Tests and curious players can reach the game from the console.
  (window as unknown as { sampleGame: unknown }).sampleGame = { game, session };
}

boot().catch((error: unknown) => {
  const status = document.getElementById('status');
  if (status !== null) {
    status.textContent = `The game could not start: ${error instanceof Error ? error.message : String(error)}. Is the game server running?`;
  }
  console.error(error);
});
