// The benchmark suite's statistics and flag parsing (bench/lib). No timing
// assertions: the benchmarks' figures are recorded in docs/BENCHMARKS.md.
import { describe, expect, it } from 'vitest';

import { parseFlags } from '../bench/lib/flags.js';
import { median, percentile, summarize } from '../bench/lib/stats.js';

describe('bench statistics', () => {
  it('percentile uses the nearest rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(percentile(values, 0.5)).toBe(50);
    expect(percentile(values, 0.99)).toBe(99);
    expect(percentile(values, 1)).toBe(100);
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentile([], 0.5)).toBeNaN();
  });

  it('median of odd and even counts', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('summarize reports spread and rounded runs', () => {
    const summary = summarize([10, 12.3456, 8]);
    expect(summary.median).toBe(10);
    expect(summary.min).toBe(8);
    expect(summary.max).toBe(12.35);
    expect(summary.spreadPercent).toBe(43.46);
    expect(summary.runs).toEqual([10, 12.35, 8]);
  });
});

describe('bench flags', () => {
  const defaults = { runs: 5, rate: 500 };

  it('overrides defaults from --name=value', () => {
    expect(parseFlags(defaults, ['--runs=3'])).toEqual({ runs: 3, rate: 500 });
    expect(parseFlags(defaults, [])).toEqual(defaults);
  });

  it('rejects unknown flags', () => {
    expect(() => parseFlags(defaults, ['--rounds=3'])).toThrow(/Unknown flag --rounds/);
  });

  it('rejects malformed arguments', () => {
    expect(() => parseFlags(defaults, ['runs=3'])).toThrow(/expected --name=value/);
  });

  it('rejects negative and non-numeric values', () => {
    expect(() => parseFlags(defaults, ['--runs=-1'])).toThrow(/not a non-negative number/);
    expect(() => parseFlags(defaults, ['--runs=many'])).toThrow(/not a non-negative number/);
  });
});
