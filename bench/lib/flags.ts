// Command-line flags of the benchmark scripts: `--name=value` numbers only.

/** Reads `--name=value` flags over `defaults`; an unknown flag or a value that is not a non-negative number throws. */
export function parseFlags<T extends Record<string, number>>(defaults: T, argv: readonly string[] = process.argv.slice(2)): T {
  const flags: Record<string, number> = { ...defaults };
  for (const argument of argv) {
    const match = /^--([a-zA-Z][\w-]*)=(.+)$/.exec(argument);
    if (!match) {
      throw new Error(`Invalid argument "${argument}": expected --name=value with one of ${Object.keys(defaults).join(', ')}.`);
    }
    const [, name, raw] = match;
    if (!(name in defaults)) {
      throw new Error(`Unknown flag --${name}; the flags are ${Object.keys(defaults).map((key) => `--${key}`).join(', ')}.`);
    }
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) {
      throw new Error(`Invalid value for --${name}: "${raw}" is not a non-negative number.`);
    }
    flags[name] = value;
  }
  return flags as T;
}
