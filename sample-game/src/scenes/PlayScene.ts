// The game: fly a ship, collect falling stars, dodge rocks. The shop's items
// change play: the golden ship flies faster, the crown doubles every star and
// sits on its owner's ship, and an extra-lives pack adds three lives.

import Phaser from 'phaser';

import {
  CROWN_SCORE_MULTIPLIER,
  EXTRA_LIVES,
  GOLDEN_SHIP,
  GOLDEN_SHIP_SPEED,
  LIVES_PER_PACK,
  STAR_CROWN,
} from '../../shared/items.js';
import { getSession, onPurchaseGranted } from '../code-pay.js';
import { createButton, type Button } from '../button.js';
import { TEXTURES } from '../textures.js';
import type { Session } from '../session.js';

export const PLAY_SCENE = 'play';

const WIDTH = 800;
const HEIGHT = 600;
const BASE_SPEED = 320;
const START_LIVES = 3;
const STAR_POINTS = 10;
const INVULNERABLE_MS = 1500;
const BEST_SCORE_KEY = 'sampleGame:bestScore';

type RunState = 'ready' | 'playing' | 'over';

export class PlayScene extends Phaser.Scene {
  private session!: Session;
  private ship!: Phaser.Physics.Arcade.Image;
  private crown!: Phaser.GameObjects.Image;
  private stars!: Phaser.Physics.Arcade.Group;
  private rocks!: Phaser.Physics.Arcade.Group;
  private backdrop: Array<{ image: Phaser.GameObjects.Image; speed: number }> = [];

  private cursors!: Phaser.Types.Input.Keyboard.CursorKeys;
  private wasd!: Record<'up' | 'down' | 'left' | 'right', Phaser.Input.Keyboard.Key>;

  private scoreText!: Phaser.GameObjects.Text;
  private bestText!: Phaser.GameObjects.Text;
  private packText!: Phaser.GameObjects.Text;
  private hearts!: Phaser.GameObjects.Container;
  private messageText!: Phaser.GameObjects.Text;
  private continueButton!: Button;

  private state: RunState = 'ready';
  private score = 0;
  private best = 0;
  private lives = START_LIVES;
  private elapsedMs = 0;
  private nextStarMs = 0;
  private nextRockMs = 0;
  private invulnerableUntil = 0;

  constructor() {
    super(PLAY_SCENE);
  }

  create(): void {
    this.session = getSession(this);
    this.best = readBestScore();
    this.createBackdrop();

    this.stars = this.physics.add.group();
    this.rocks = this.physics.add.group();

    this.ship = this.physics.add.image(WIDTH / 2, HEIGHT - 90, TEXTURES.ship);
    this.ship.setCollideWorldBounds(true);
    (this.ship.body as Phaser.Physics.Arcade.Body).setSize(30, 40);
    this.crown = this.add.image(this.ship.x, this.ship.y - 36, TEXTURES.crown).setVisible(false);

    this.physics.add.overlap(this.ship, this.stars, (_ship, star) => this.collectStar(star as Phaser.Physics.Arcade.Image));
    this.physics.add.overlap(this.ship, this.rocks, (_ship, rock) => this.hitRock(rock as Phaser.Physics.Arcade.Image));

    this.createHud();
    this.createInput();
    this.applyItems();

    const stopListening = this.session.onChange(() => this.applyItems());
    const stopGrants = onPurchaseGranted(this, (itemId) => this.onItemGranted(itemId));
    this.events.once(Phaser.Scenes.Events.SHUTDOWN, () => {
      stopListening();
      stopGrants();
    });

    this.showReady();
  }

  override update(_time: number, delta: number): void {
    this.scrollBackdrop(delta);
    this.crown.setPosition(this.ship.x, this.ship.y - 36);

    if (this.state !== 'playing') {
      this.ship.setVelocity(0, 0);
      return;
    }

    this.elapsedMs += delta;
    this.steerShip();
    this.spawnObjects();
    this.removeFallenObjects();
    this.ship.setAlpha(this.time.now < this.invulnerableUntil ? 0.4 + 0.6 * Math.abs(Math.sin(this.time.now / 80)) : 1);
  }

  /** Called by the shop when it closes, so a key press that closed it does not also steer. */
  resumeFromShop(): void {
    this.input.keyboard?.resetKeys();
  }

  private createBackdrop(): void {
    this.cameras.main.setBackgroundColor('#0b1026');
    for (let i = 0; i < 90; i++) {
      const speed = Phaser.Math.Between(20, 120);
      const image = this.add
        .image(Phaser.Math.Between(0, WIDTH), Phaser.Math.Between(0, HEIGHT), TEXTURES.backgroundStar)
        .setAlpha(speed / 140)
        .setScale(speed > 90 ? 1.5 : 1);
      this.backdrop.push({ image, speed });
    }
  }

  private scrollBackdrop(delta: number): void {
    for (const { image, speed } of this.backdrop) {
      image.y += (speed * delta) / 1000;
      if (image.y > HEIGHT) {
        image.y = 0;
        image.x = Phaser.Math.Between(0, WIDTH);
      }
    }
  }

  private createHud(): void {
    const style = { fontFamily: 'Verdana, sans-serif', fontSize: '20px', color: '#e8ecff' };
    this.scoreText = this.add.text(16, 12, '', style).setDepth(10);
    this.bestText = this.add.text(16, 38, '', { ...style, fontSize: '14px', color: '#9aa6d8' }).setDepth(10);
    this.hearts = this.add.container(16, 70).setDepth(10);
    this.packText = this.add.text(16, 96, '', { ...style, fontSize: '14px', color: '#ffb3c1' }).setDepth(10);
    this.messageText = this.add
      .text(WIDTH / 2, HEIGHT / 2 - 40, '', { ...style, fontSize: '24px', align: 'center', lineSpacing: 10 })
      .setOrigin(0.5)
      .setDepth(10);

    createButton(this, { x: WIDTH - 70, y: 32, width: 110, height: 40, label: 'SHOP', onClick: () => this.openShop() }).setDepth(10);
    this.continueButton = createButton(this, {
      x: WIDTH / 2,
      y: HEIGHT / 2 + 90,
      width: 300,
      height: 44,
      label: `Use a pack: +${LIVES_PER_PACK} lives (L)`,
      onClick: () => void this.usePack(),
    });
    this.continueButton.setDepth(10).setVisible(false);

    this.add
      .text(WIDTH - 12, HEIGHT - 10, `Player ${this.session.playerId.slice(0, 14)}`, { ...style, fontSize: '11px', color: '#5d6790' })
      .setOrigin(1, 1)
      .setDepth(10);

    this.updateHud();
  }

  private createInput(): void {
    const keyboard = this.input.keyboard!;
    this.cursors = keyboard.createCursorKeys();
    this.wasd = {
      up: keyboard.addKey(Phaser.Input.Keyboard.KeyCodes.W),
      down: keyboard.addKey(Phaser.Input.Keyboard.KeyCodes.S),
      left: keyboard.addKey(Phaser.Input.Keyboard.KeyCodes.A),
      right: keyboard.addKey(Phaser.Input.Keyboard.KeyCodes.D),
    };

    keyboard.on('keydown-SPACE', () => this.startOrRestart());
    keyboard.on('keydown-ENTER', () => this.startOrRestart());
    keyboard.on('keydown-B', () => this.openShop());
    keyboard.on('keydown-L', () => void this.usePack());

    // A tap or click on empty space starts a run; buttons stop their own events.
    this.input.on('pointerdown', (_pointer: Phaser.Input.Pointer, targets: Phaser.GameObjects.GameObject[]) => {
      if (targets.length === 0 && this.state !== 'playing') {
        this.startOrRestart();
      }
    });
  }

  private steerShip(): void {
    const speed = BASE_SPEED * (this.session.quantity(GOLDEN_SHIP) > 0 ? GOLDEN_SHIP_SPEED : 1);
    let dx = 0;
    let dy = 0;
    if (this.cursors.left.isDown || this.wasd.left.isDown) dx -= 1;
    if (this.cursors.right.isDown || this.wasd.right.isDown) dx += 1;
    if (this.cursors.up.isDown || this.wasd.up.isDown) dy -= 1;
    if (this.cursors.down.isDown || this.wasd.down.isDown) dy += 1;

    // Mouse or touch: while the pointer is held, fly towards it.
    const pointer = this.input.activePointer;
    if (dx === 0 && dy === 0 && pointer.isDown) {
      const distance = Phaser.Math.Distance.Between(this.ship.x, this.ship.y, pointer.worldX, pointer.worldY);
      if (distance > 8) {
        dx = (pointer.worldX - this.ship.x) / distance;
        dy = (pointer.worldY - this.ship.y) / distance;
      }
    }

    const length = Math.hypot(dx, dy) || 1;
    this.ship.setVelocity((dx / length) * speed, (dy / length) * speed);
  }

  private spawnObjects(): void {
    // Difficulty rises over the first two minutes of a run.
    const difficulty = Math.min(this.elapsedMs / 120_000, 1);

    if (this.elapsedMs >= this.nextStarMs) {
      const star = this.stars.create(Phaser.Math.Between(30, WIDTH - 30), -20, TEXTURES.star) as Phaser.Physics.Arcade.Image;
      star.setVelocity(Phaser.Math.Between(-20, 20), Phaser.Math.Between(120, 180));
      star.setAngularVelocity(90);
      this.nextStarMs = this.elapsedMs + Phaser.Math.Between(500, 900);
    }

    if (this.elapsedMs >= this.nextRockMs) {
      const rock = this.rocks.create(Phaser.Math.Between(30, WIDTH - 30), -30, TEXTURES.rock) as Phaser.Physics.Arcade.Image;
      const scale = Phaser.Math.FloatBetween(0.7, 1.4);
      rock.setScale(scale);
      rock.body!.setCircle(18, 4, 4);
      rock.setVelocity(Phaser.Math.Between(-40, 40), Phaser.Math.Between(160, 220) + difficulty * 180);
      rock.setAngularVelocity(Phaser.Math.Between(-120, 120));
      this.nextRockMs = this.elapsedMs + Phaser.Math.Between(700, 1100) - difficulty * 450;
    }
  }

  private removeFallenObjects(): void {
    for (const group of [this.stars, this.rocks]) {
      for (const child of group.getChildren()) {
        const image = child as Phaser.Physics.Arcade.Image;
        if (image.y > HEIGHT + 60) {
          image.destroy();
        }
      }
    }
  }

  private collectStar(star: Phaser.Physics.Arcade.Image): void {
    const multiplier = this.session.quantity(STAR_CROWN) > 0 ? CROWN_SCORE_MULTIPLIER : 1;
    const points = STAR_POINTS * multiplier;
    this.score += points;
    this.burst(star.x, star.y, 0xffe066);
    this.floatText(star.x, star.y, `+${points}`, multiplier > 1 ? '#ffc928' : '#fff1a8');
    star.destroy();
    this.updateHud();
  }

  private hitRock(rock: Phaser.Physics.Arcade.Image): void {
    if (this.time.now < this.invulnerableUntil) {
      return;
    }

    this.burst(rock.x, rock.y, 0xb09a86);
    rock.destroy();
    this.lives -= 1;
    this.invulnerableUntil = this.time.now + INVULNERABLE_MS;
    this.cameras.main.shake(200, 0.01);
    this.updateHud();

    if (this.lives <= 0) {
      this.gameOver();
    }
  }

  private startOrRestart(): void {
    if (this.state === 'playing' || this.scene.isActive('shop')) {
      return;
    }

    this.stars.clear(true, true);
    this.rocks.clear(true, true);
    this.score = 0;
    this.lives = START_LIVES;
    this.elapsedMs = 0;
    this.nextStarMs = 0;
    this.nextRockMs = 1200;
    this.invulnerableUntil = 0;
    this.ship.setPosition(WIDTH / 2, HEIGHT - 90).setAlpha(1);

    this.state = 'playing';
    this.messageText.setText('');
    this.continueButton.setVisible(false);
    this.updateHud();
  }

  private gameOver(): void {
    this.state = 'over';
    this.ship.setAlpha(1);
    if (this.score > this.best) {
      this.best = this.score;
      writeBestScore(this.best);
    }
    this.showGameOver();
    this.updateHud();
  }

  private showReady(): void {
    this.messageText.setText(['STAR DASH', '', 'Collect stars, dodge rocks.', 'Arrows / WASD, or hold the mouse or a finger to fly.', '', 'SPACE or tap to start   ·   B opens the shop']);
    this.messageText.setFontSize(20);
  }

  private showGameOver(): void {
    this.messageText.setText(['GAME OVER', '', `Score ${this.score}`, '', 'SPACE or tap to play again']);
    this.continueButton.setVisible(this.session.quantity(EXTRA_LIVES) > 0);
  }

  /** Uses one extra-lives pack: during a run it adds lives; after a game over it continues the run. */
  private async usePack(): Promise<void> {
    if (this.state === 'ready' || this.session.quantity(EXTRA_LIVES) === 0) {
      return;
    }

    try {
      await this.session.consume(EXTRA_LIVES);
    } catch (error) {
      this.floatText(WIDTH / 2, HEIGHT / 2, error instanceof Error ? error.message : 'Could not use the pack', '#ff8a8a');
      return;
    }

    this.lives += LIVES_PER_PACK;
    this.floatText(this.ship.x, this.ship.y - 40, `+${LIVES_PER_PACK} lives`, '#ff8fa3');
    if (this.state === 'over') {
      this.state = 'playing';
      this.invulnerableUntil = this.time.now + INVULNERABLE_MS;
      this.messageText.setText('');
      this.continueButton.setVisible(false);
    }
    this.updateHud();
  }

  /** Uses a pack bought during a run or after a game over at once; a pack bought before a run waits in the inventory. */
  private onItemGranted(itemId: string): void {
    if (itemId === EXTRA_LIVES && this.state !== 'ready') {
      void this.usePack();
    }
  }

  /** Shows what the player owns: ship colour, crown, unused packs. */
  private applyItems(): void {
    const golden = this.session.quantity(GOLDEN_SHIP) > 0;
    this.ship.setTexture(golden ? TEXTURES.goldenShip : TEXTURES.ship);
    this.crown.setVisible(this.session.quantity(STAR_CROWN) > 0);
    if (this.state === 'over') {
      this.continueButton.setVisible(this.session.quantity(EXTRA_LIVES) > 0);
    }
    this.updateHud();
  }

  private updateHud(): void {
    const crowned = this.session.quantity(STAR_CROWN) > 0;
    this.scoreText.setText(`Score ${this.score}${crowned ? '  (crown: stars ×2)' : ''}`);
    this.bestText.setText(`Best ${this.best}`);

    this.hearts.removeAll(true);
    const shown = Math.min(this.lives, 8);
    for (let i = 0; i < shown; i++) {
      this.hearts.add(this.add.image(i * 26 + 11, 10, TEXTURES.heart));
    }
    if (this.lives > shown) {
      this.hearts.add(this.add.text(shown * 26 + 4, 0, `+${this.lives - shown}`, { fontFamily: 'Verdana, sans-serif', fontSize: '16px', color: '#ff8fa3' }));
    }

    const packs = this.session.quantity(EXTRA_LIVES);
    this.packText.setText(packs > 0 ? `Extra-lives packs: ${packs} (L uses one)` : '');
  }

  private openShop(): void {
    if (this.scene.isActive('shop')) {
      return;
    }
    this.scene.pause();
    this.scene.launch('shop');
  }

  private burst(x: number, y: number, tint: number): void {
    for (let i = 0; i < 10; i++) {
      const spark = this.add.image(x, y, TEXTURES.spark).setTint(tint);
      const angle = (i / 10) * Math.PI * 2;
      this.tweens.add({
        targets: spark,
        x: x + Math.cos(angle) * 40,
        y: y + Math.sin(angle) * 40,
        alpha: 0,
        scale: 0.2,
        duration: 350,
        onComplete: () => spark.destroy(),
      });
    }
  }

  private floatText(x: number, y: number, text: string, color: string): void {
    const label = this.add
      .text(x, y, text, { fontFamily: 'Verdana, sans-serif', fontSize: '18px', color, stroke: '#0b1026', strokeThickness: 3 })
      .setOrigin(0.5)
      .setDepth(11);
    this.tweens.add({ targets: label, y: y - 40, alpha: 0, duration: 900, onComplete: () => label.destroy() });
  }
}

function readBestScore(): number {
  try {
    const value = Number(window.localStorage.getItem(BEST_SCORE_KEY));
    return Number.isFinite(value) && value > 0 ? value : 0;
  } catch {
    return 0;
  }
}

function writeBestScore(score: number): void {
  try {
    window.localStorage.setItem(BEST_SCORE_KEY, String(score));
  } catch {
    // The best score is a nicety; without storage it lasts until the page closes.
  }
}
