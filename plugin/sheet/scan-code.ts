// Draws the intent's scan code as an SVG document, from the rendezvous
// payload encoded by `@code-wallet/kikcode` (a WebAssembly module loaded on
// first use).
import type { Rendezvous } from './rendezvous.js';

export interface ScanCodeStyle {
  /** Side of the square image in pixels. */
  size: number;
  background: string;
  foreground: string;
}

export const DEFAULT_SCAN_CODE_STYLE: ScanCodeStyle = { size: 512, background: '#45464E', foreground: '#FFFFFF' };

export async function renderScanCodeSvg(rendezvous: Rendezvous, style: ScanCodeStyle = DEFAULT_SCAN_CODE_STYLE): Promise<string> {
  const { encode, KikCode } = await import('@code-wallet/kikcode');

  // `encode` returns a view into the WebAssembly heap, so copy it before the next call reuses the memory.
  const encoded = new Uint8Array(await encode(rendezvous.payload));

  // The code's outer dots reach past the circle of its nominal size, so it
  // is drawn at 200/220 of the image and centred, as Code's own views do.
  const inner = (style.size * 200) / 220;
  const margin = (style.size - inner) / 2;
  const description = KikCode.generateDescription({ width: inner, height: inner }, encoded);
  const half = style.size / 2;

  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${style.size}" height="${style.size}" viewBox="0 0 ${style.size} ${style.size}">`,
    `<circle cx="${half}" cy="${half}" r="${half}" fill="${style.background}"/>`,
    // NOTE: the centre is a plain disc, but Code's own views cut the Code logo out of it.
    // No real device has scanned this drawing yet, so whether the app needs the logo is unknown.
    `<g transform="translate(${margin} ${margin})">`,
    `<path d="${description.center}" fill="${style.foreground}"/>`,
    ...description.arcs.map(
      (arc) => `<path d="${arc}" fill="none" stroke="${style.foreground}" stroke-linecap="round" stroke-width="${description.dotDimension}"/>`,
    ),
    ...description.dots.map((dot) => `<path d="${dot}" fill="${style.foreground}"/>`),
    '</g>',
    '</svg>',
  ];
  return parts.join('');
}
