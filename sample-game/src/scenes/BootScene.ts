// Draws the textures, connects the plugin's events to the session, and
// starts the game.

import Phaser from 'phaser';

import { getCodePay, getSession, watchGrants } from '../code-pay.js';
import { createTextures } from '../textures.js';
import { PLAY_SCENE } from './PlayScene.js';

export const BOOT_SCENE = 'boot';

export class BootScene extends Phaser.Scene {
  constructor() {
    super(BOOT_SCENE);
  }

  create(): void {
    createTextures(this);
    watchGrants(this.game, getCodePay(this), getSession(this));
    this.scene.start(PLAY_SCENE);
  }
}
