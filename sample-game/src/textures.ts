// Every image of the game is drawn here with Phaser Graphics and baked into a
// texture at boot, so the game loads no asset files.

import Phaser from 'phaser';

export const TEXTURES = {
  ship: 'ship',
  goldenShip: 'golden-ship',
  crown: 'crown',
  star: 'star',
  rock: 'rock',
  heart: 'heart',
  spark: 'spark',
  backgroundStar: 'background-star',
} as const;

export const SHIP_SIZE = { width: 48, height: 56 };

export function createTextures(scene: Phaser.Scene): void {
  const graphics = scene.make.graphics({ x: 0, y: 0 }, false);

  drawShip(graphics, { hull: 0x5fb4ff, trim: 0x1d4f91, window: 0xe8f6ff, flame: 0xff8a3d });
  graphics.generateTexture(TEXTURES.ship, SHIP_SIZE.width, SHIP_SIZE.height);

  graphics.clear();
  drawShip(graphics, { hull: 0xffd34d, trim: 0xb8860b, window: 0xfff6d5, flame: 0xfff1a8 });
  graphics.generateTexture(TEXTURES.goldenShip, SHIP_SIZE.width, SHIP_SIZE.height);

  graphics.clear();
  drawCrown(graphics);
  graphics.generateTexture(TEXTURES.crown, 36, 26);

  graphics.clear();
  graphics.fillStyle(0xffe066);
  graphics.fillPoints(starPoints(16, 16, 15, 6.5, 5), true);
  graphics.lineStyle(2, 0xfff8d0);
  graphics.strokePoints(starPoints(16, 16, 15, 6.5, 5), true);
  graphics.generateTexture(TEXTURES.star, 32, 32);

  graphics.clear();
  drawRock(graphics);
  graphics.generateTexture(TEXTURES.rock, 44, 44);

  graphics.clear();
  drawHeart(graphics);
  graphics.generateTexture(TEXTURES.heart, 22, 20);

  graphics.clear();
  graphics.fillStyle(0xffffff);
  graphics.fillCircle(4, 4, 4);
  graphics.generateTexture(TEXTURES.spark, 8, 8);

  graphics.clear();
  graphics.fillStyle(0xffffff);
  graphics.fillRect(0, 0, 2, 2);
  graphics.generateTexture(TEXTURES.backgroundStar, 2, 2);

  graphics.destroy();
}

interface ShipColors {
  hull: number;
  trim: number;
  window: number;
  flame: number;
}

function drawShip(graphics: Phaser.GameObjects.Graphics, colors: ShipColors): void {
  // Exhaust flame under the hull.
  graphics.fillStyle(colors.flame);
  graphics.fillTriangle(18, 46, 30, 46, 24, 56);

  // Wings, then the hull on top of them.
  graphics.fillStyle(colors.trim);
  graphics.fillTriangle(24, 14, 2, 46, 46, 46);
  graphics.fillStyle(colors.hull);
  graphics.fillTriangle(24, 0, 12, 46, 36, 46);
  graphics.fillRect(12, 38, 24, 8);

  graphics.fillStyle(colors.window);
  graphics.fillEllipse(24, 22, 9, 14);
}

function drawCrown(graphics: Phaser.GameObjects.Graphics): void {
  graphics.fillStyle(0xffc928);
  graphics.fillPoints(
    [
      new Phaser.Math.Vector2(2, 24),
      new Phaser.Math.Vector2(2, 6),
      new Phaser.Math.Vector2(10, 14),
      new Phaser.Math.Vector2(18, 2),
      new Phaser.Math.Vector2(26, 14),
      new Phaser.Math.Vector2(34, 6),
      new Phaser.Math.Vector2(34, 24),
    ],
    true,
  );
  graphics.fillStyle(0xe0313d);
  graphics.fillCircle(18, 17, 3);
  graphics.fillStyle(0x3dd6e0);
  graphics.fillCircle(9, 19, 2);
  graphics.fillCircle(27, 19, 2);
}

function drawRock(graphics: Phaser.GameObjects.Graphics): void {
  const outline = [
    [22, 2],
    [36, 8],
    [42, 22],
    [36, 36],
    [22, 42],
    [8, 37],
    [2, 22],
    [9, 8],
  ].map(([x, y]) => new Phaser.Math.Vector2(x, y));

  graphics.fillStyle(0x8a7a6b);
  graphics.fillPoints(outline, true);
  graphics.lineStyle(2, 0x5a4d42);
  graphics.strokePoints(outline, true);

  graphics.fillStyle(0x6d6054);
  graphics.fillCircle(15, 16, 5);
  graphics.fillCircle(29, 27, 6);
  graphics.fillCircle(18, 32, 3);
}

function drawHeart(graphics: Phaser.GameObjects.Graphics): void {
  graphics.fillStyle(0xff4d6d);
  graphics.fillCircle(6, 6, 6);
  graphics.fillCircle(16, 6, 6);
  graphics.fillTriangle(0, 8, 22, 8, 11, 20);
}

/** Corner points of a star polygon centred on (x, y). */
function starPoints(x: number, y: number, outer: number, inner: number, tips: number): Phaser.Math.Vector2[] {
  const points: Phaser.Math.Vector2[] = [];
  for (let i = 0; i < tips * 2; i++) {
    const radius = i % 2 === 0 ? outer : inner;
    const angle = -Math.PI / 2 + (i * Math.PI) / tips;
    points.push(new Phaser.Math.Vector2(x + Math.cos(angle) * radius, y + Math.sin(angle) * radius));
  }
  return points;
}
