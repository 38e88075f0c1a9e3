// The `elements` flow: the official `@code-wallet/elements` `page` element
// for the server's client secret, mounted over the game.
//
// The element teleports its iframes to `document.body` and styles them
// `position: fixed` over the whole viewport. A fullscreen game shows only
// the element it went fullscreen with, so the sheet redirects the teleport
// into a host element inside that element (or the canvas's parent). The
// host's `transform` makes it the containing block of the fixed iframes, so
// they cover the game instead of the page. The element also sizes its
// iframes `100dvw` × `100dvh`, which would centre the payment page on the
// viewport rather than on the game, so the sheet resizes them to the host.
import type Phaser from 'phaser';
import type { Logger } from 'pino';
import type { Purchase } from '../../protocol/index.js';
import type { SheetLabels, SheetStatus } from './labels.js';
import { statusForState, type PaymentSheet, type SheetContext } from './sheet.js';

export interface ElementsSheetOptions {
  labels: SheetLabels;
  /** Passed to the element; for example `en`. */
  locale?: string;
  /** Element on the page to contain the sheet; by default the Scale Manager's fullscreen target or the canvas's parent. */
  container?: HTMLElement;
  log: Logger;
}

/** Structural type of the element `@code-wallet/elements` returns, so the module loads lazily. */
interface CodeElement {
  on(event: 'success' | 'cancel' | 'error' | 'invoke', callback: (args: unknown) => Promise<boolean | void>): void;
  mount(element: HTMLElement): unknown;
  unmount(): void;
}

export class ElementsSheet implements PaymentSheet {
  readonly purchaseId: string;
  /** Element that contains the sheet, public for tests and for games that restyle it. */
  readonly host: HTMLDivElement;

  private currentStatus: SheetStatus;
  private element: CodeElement | undefined;
  private closed = false;
  private readonly onResize = () => this.layout();
  private readonly iframeObserver = new MutationObserver(() => this.fitIframes());

  constructor(
    private readonly game: Phaser.Game,
    private readonly context: SheetContext,
    private readonly options: ElementsSheetOptions,
  ) {
    this.purchaseId = context.purchase.id;
    this.currentStatus = statusForState(context.purchase.state);
    this.host = document.createElement('div');
    this.host.dataset.codePaySheet = context.purchase.id;
  }

  get status(): SheetStatus {
    return this.currentStatus;
  }

  async open(): Promise<void> {
    const container = this.resolveContainer();
    if (getComputedStyle(container).position === 'static') {
      // NOTE: the host is positioned against its container, so a static container becomes relative while the sheet is open.
      container.style.position = 'relative';
    }

    Object.assign(this.host.style, {
      position: 'absolute',
      zIndex: '2147483000',
      transform: 'translateZ(0)',
      overflow: 'hidden',
      background: 'rgba(0, 0, 0, 0.65)',
    });
    this.host.append(this.createCloseButton());
    container.append(this.host);
    this.layout();
    this.game.scale.on('resize', this.onResize);

    try {
      const { elements } = await import('@code-wallet/elements');
      if (this.closed) return;

      const purchase = this.context.purchase;
      const { page } = elements.create('page', {
        mode: 'payment',
        amount: purchase.amount,
        currency: purchase.currency as never,
        destination: purchase.destination,
        clientSecret: purchase.clientSecret,
        ...(this.options.locale ? { locale: this.options.locale as never } : {}),
      });
      if (!page) throw new Error('elements.create returned no page element');
      this.element = page as CodeElement;

      // Returning true stops the element from following a success or cancel URL.
      this.element.on('success', async () => {
        this.context.onPaymentHint();
        return true;
      });
      this.element.on('cancel', async () => {
        this.closeByPlayer();
        return true;
      });
      this.element.on('error', async (args) => {
        this.options.log.warn(
          { purchaseId: this.purchaseId, reason: (args as { message?: string } | undefined)?.message },
          'code-pay: the elements page reported an error',
        );
      });

      const mountPoint = document.createElement('div');
      this.host.append(mountPoint);
      redirectBodyInserts(this.host, () => this.element?.mount(mountPoint));
      this.fitIframes();
      this.iframeObserver.observe(this.host, { subtree: true, childList: true, attributes: true, attributeFilter: ['style'] });
    } catch (error) {
      this.options.log.error(
        { purchaseId: this.purchaseId, err: { message: error instanceof Error ? error.message : String(error) } },
        'code-pay: could not mount the elements page',
      );
      this.currentStatus = 'error';
    }
  }

  update(purchase: Purchase): void {
    if (purchase.id !== this.purchaseId || this.closed) return;
    this.currentStatus = statusForState(purchase.state);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;

    this.game.scale.off('resize', this.onResize);
    this.iframeObserver.disconnect();
    try {
      this.element?.unmount();
    } catch (error) {
      this.options.log.warn({ purchaseId: this.purchaseId, err: { message: String(error) } }, 'code-pay: unmounting the elements page failed');
    }
    this.host.remove();
  }

  private closeByPlayer(): void {
    if (this.closed) return;
    this.close();
    this.context.onClosedByPlayer();
  }

  private resolveContainer(): HTMLElement {
    if (this.options.container) return this.options.container;

    const target = this.game.scale.fullscreenTarget as unknown;
    if (target instanceof HTMLElement && target.contains(this.game.canvas)) return target;
    return this.game.canvas.parentElement ?? document.body;
  }

  /** Places the host over the canvas, so the element covers the game and nothing else. */
  private layout(): void {
    const canvas = this.game.canvas;
    const parent = this.host.parentElement;
    if (!parent) return;

    const canvasBox = canvas.getBoundingClientRect();
    const parentBox = parent.getBoundingClientRect();
    Object.assign(this.host.style, {
      left: `${canvasBox.left - parentBox.left + parent.scrollLeft - parent.clientLeft}px`,
      top: `${canvasBox.top - parentBox.top + parent.scrollTop - parent.clientTop}px`,
      width: `${canvasBox.width}px`,
      height: `${canvasBox.height}px`,
    });
  }

  /** Sizes the element's iframes to the host; runs again whenever the element rewrites their style. */
  private fitIframes(): void {
    for (const iframe of this.host.querySelectorAll('iframe')) {
      for (const property of ['width', 'height']) {
        if (iframe.style.getPropertyValue(property) !== '100%' || iframe.style.getPropertyPriority(property) !== 'important') {
          iframe.style.setProperty(property, '100%', 'important');
        }
      }
    }
  }

  private createCloseButton(): HTMLButtonElement {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = this.options.labels.cancel;
    Object.assign(button.style, {
      position: 'absolute',
      right: '12px',
      bottom: '12px',
      // Above the element's own iframes, which set their own z-index.
      zIndex: '2147483647',
      padding: '8px 16px',
      font: '16px sans-serif',
    });
    button.addEventListener('click', () => this.closeByPlayer());
    return button;
  }
}

/**
 * Runs `mount` with `document.body.insertBefore` and `appendChild` sending
 * new nodes to `target`. Vue's `<Teleport to="body">` inserts its content
 * with these calls while the app mounts, so the teleported iframes are
 * created inside `target`. Moving them afterwards would reload the iframes
 * and break the element's message channel, which keeps the old window.
 */
function redirectBodyInserts(target: HTMLElement, mount: () => void): void {
  const body = document.body as HTMLElement & { insertBefore: Node['insertBefore']; appendChild: Node['appendChild'] };

  body.insertBefore = function <T extends Node>(node: T, child: Node | null): T {
    return target.insertBefore(node, child && child.parentNode === target ? child : null);
  };
  body.appendChild = function <T extends Node>(node: T): T {
    return target.appendChild(node);
  };

  try {
    mount();
  } finally {
    // Deleting the own properties brings back the prototype's methods.
    delete (body as Partial<typeof body>).insertBefore;
    delete (body as Partial<typeof body>).appendChild;
  }
}
