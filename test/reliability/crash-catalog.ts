// The catalog of the crash-matrix server: two items of every kind.

export const CRASH_CATALOG = [
  { id: 'sword', kind: 'permanent', name: 'Sword', amount: 0.25, currency: 'usd' },
  { id: 'shield', kind: 'permanent', name: 'Shield', amount: 0.3, currency: 'usd' },
  { id: 'gems-10', kind: 'consumable', name: '10 gems', amount: 0.1, currency: 'usd' },
  { id: 'life', kind: 'consumable', name: 'Extra life', amount: 0.05, currency: 'usd' },
  { id: 'crown', kind: 'unique', name: 'The crown', amount: 0.5, currency: 'usd' },
  { id: 'orb', kind: 'unique', name: 'The orb', amount: 0.75, currency: 'usd' },
] as const;

/** The address every payment goes to; any well-formed base58 key works against the sandbox. */
export const CRASH_DESTINATION = 'ELS2rU9As8Niq6UNxRdNbJTeJsGCUYhYuSEfGeCGWtjH';
