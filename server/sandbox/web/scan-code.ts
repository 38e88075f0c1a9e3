// Draws Code scan codes in the browser and derives payment request intents
// from a client secret, for the wallet page and the elements pages.

import { KikCode, encode } from '@code-wallet/kikcode';
import { PaymentRequestIntent } from '@code-wallet/intents';
import type { CurrencyCode } from '@code-wallet/currency';

const SVG_NAMESPACE = 'http://www.w3.org/2000/svg';

/** The fields that determine a payment request intent's id. */
export interface PaymentRequestFields {
  destination: string;
  amount: number;
  currency: string;
}

/** Source of an intent's nonce: the client secret, or the idempotency key it is derived from. */
export type NonceSource = { clientSecret: string } | { idempotencyKey: string };

/**
 * Builds the payment request intent for a client secret or an idempotency
 * key. The destination does not change the intent id, but
 * `@code-wallet/intents` requires a valid one.
 */
export function buildPaymentRequestIntent(fields: PaymentRequestFields, nonce: NonceSource): PaymentRequestIntent {
  return new PaymentRequestIntent({
    destination: fields.destination,
    amount: fields.amount,
    currency: fields.currency as CurrencyCode,
    ...nonce,
  });
}

/**
 * Returns the intent id for a client secret and the intent's amount and
 * currency, or undefined when the secret is not valid base58 of 11 bytes.
 */
export function intentIdForClientSecret(fields: PaymentRequestFields, clientSecret: string): string | undefined {
  try {
    return buildPaymentRequestIntent(fields, { clientSecret }).getIntentId();
  } catch {
    return undefined;
  }
}

/**
 * Replaces the container's content with an SVG scan code for the intent's
 * rendezvous payload, drawn from the `KikCode.generateDescription` shapes.
 */
export async function drawScanCode(container: Element, intent: PaymentRequestIntent, size = 200): Promise<void> {
  const encoded = await encode(intent.rendezvousPayload.toBinary());
  const description = KikCode.generateDescription({ width: size, height: size }, encoded);

  const svg = document.createElementNS(SVG_NAMESPACE, 'svg');
  svg.setAttribute('viewBox', `0 0 ${size} ${size}`);
  svg.setAttribute('width', String(size));
  svg.setAttribute('height', String(size));
  svg.setAttribute('class', 'scan-code');
  svg.setAttribute('data-intent-id', intent.getIntentId());

  svg.append(svgPath(description.center, { fill: 'none', stroke: 'currentColor', 'stroke-width': '2' }));

  for (const dot of description.dots) {
    svg.append(svgPath(dot, { fill: 'currentColor' }));
  }

  for (const arc of description.arcs) {
    svg.append(
      svgPath(arc, {
        fill: 'none',
        stroke: 'currentColor',
        'stroke-width': String(description.dotDimension),
        'stroke-linecap': 'round',
      }),
    );
  }

  container.replaceChildren(svg);
}

function svgPath(d: string, attributes: Record<string, string>): SVGPathElement {
  const path = document.createElementNS(SVG_NAMESPACE, 'path');
  path.setAttribute('d', d);
  for (const [name, value] of Object.entries(attributes)) {
    path.setAttribute(name, value);
  }
  return path;
}

/** Formats an amount in a currency's major unit, for example `0.25 USD`. */
export function formatAmount(amount: number, currency: string): string {
  return `${amount.toFixed(currency === 'kin' || currency === 'jpy' ? 0 : 2)} ${currency.toUpperCase()}`;
}
