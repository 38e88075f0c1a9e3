// The sample game's three catalog items, which the server sells through the
// kit. The client uses only the ids, to apply each item's effect, and takes
// names and prices from the server's catalog.

import type { CatalogItem } from '../../protocol/index.js';

/** Permanent upgrade: a golden ship that moves faster. */
export const GOLDEN_SHIP = 'golden-ship';

/** Consumable pack: three extra lives, one pack used per run. */
export const EXTRA_LIVES = 'extra-lives';

/** Unique collectible: one crown in the whole game, worn on its owner's ship. */
export const STAR_CROWN = 'star-crown';

/** Lives added when the player uses one extra-lives pack. */
export const LIVES_PER_PACK = 3;

/** Speed multiplier of the golden ship. */
export const GOLDEN_SHIP_SPEED = 1.5;

/** Score multiplier for stars collected while wearing the crown. */
export const CROWN_SCORE_MULTIPLIER = 2;

/** Amounts are in US dollars, inside Code's USD micro-payment limits (0.05 to 1.00). */
export const SAMPLE_CATALOG: readonly CatalogItem[] = [
  {
    id: GOLDEN_SHIP,
    kind: 'permanent',
    name: 'Golden ship',
    description: 'A golden hull that flies 50% faster. Yours for good.',
    amount: 0.25,
    currency: 'usd',
  },
  {
    id: EXTRA_LIVES,
    kind: 'consumable',
    name: '3 extra lives',
    description: 'Three more lives for the current or next run. Buy as many as you like.',
    amount: 0.1,
    currency: 'usd',
  },
  {
    id: STAR_CROWN,
    kind: 'unique',
    name: 'Star crown',
    description: 'The only crown in the game: doubles every star. One player owns it.',
    amount: 1,
    currency: 'usd',
  },
];
