// A rounded button drawn with Graphics, for the HUD and the shop.

import Phaser from 'phaser';

export interface ButtonOptions {
  x: number;
  y: number;
  width: number;
  height: number;
  label: string;
  onClick: () => void;
  /** Fill colour; a blue by default. */
  color?: number;
}

export class Button extends Phaser.GameObjects.Container {
  private readonly background: Phaser.GameObjects.Graphics;
  private readonly text: Phaser.GameObjects.Text;
  private readonly buttonWidth: number;
  private readonly buttonHeight: number;
  private color: number;
  private enabled = true;
  private hovered = false;

  constructor(scene: Phaser.Scene, options: ButtonOptions) {
    super(scene, options.x, options.y);
    this.buttonWidth = options.width;
    this.buttonHeight = options.height;
    this.color = options.color ?? 0x3457d5;

    this.background = scene.add.graphics();
    this.text = scene.add
      .text(0, 0, options.label, { fontFamily: 'Verdana, sans-serif', fontSize: '16px', color: '#ffffff' })
      .setOrigin(0.5);
    this.add([this.background, this.text]);

    this.setSize(options.width, options.height);
    this.setInteractive({ useHandCursor: true });
    this.on('pointerover', () => this.setHovered(true));
    this.on('pointerout', () => this.setHovered(false));
    this.on('pointerdown', (_pointer: Phaser.Input.Pointer, _x: number, _y: number, event: Phaser.Types.Input.EventData) => {
      event.stopPropagation();
      if (this.enabled) {
        options.onClick();
      }
    });

    this.draw();
    scene.add.existing(this);
  }

  setLabel(label: string): this {
    this.text.setText(label);
    return this;
  }

  setColor(color: number): this {
    this.color = color;
    this.draw();
    return this;
  }

  setEnabled(enabled: boolean): this {
    this.enabled = enabled;
    this.draw();
    return this;
  }

  private setHovered(hovered: boolean): void {
    this.hovered = hovered;
    this.draw();
  }

  private draw(): void {
    const fill = this.enabled ? this.color : 0x3a3f55;
    this.background.clear();
    this.background.fillStyle(fill, this.hovered && this.enabled ? 1 : 0.85);
    this.background.fillRoundedRect(-this.buttonWidth / 2, -this.buttonHeight / 2, this.buttonWidth, this.buttonHeight, 10);
    this.background.lineStyle(2, 0xffffff, this.enabled ? 0.5 : 0.15);
    this.background.strokeRoundedRect(-this.buttonWidth / 2, -this.buttonHeight / 2, this.buttonWidth, this.buttonHeight, 10);
    this.text.setAlpha(this.enabled ? 1 : 0.55);
  }
}

export function createButton(scene: Phaser.Scene, options: ButtonOptions): Button {
  return new Button(scene, options);
}
