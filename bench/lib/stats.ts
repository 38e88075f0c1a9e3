// Summary statistics and machine facts shared by the benchmark scripts.

import { readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';

/** Returns the value below which `fraction` of the sorted samples lie (nearest rank). */
export function percentile(values: readonly number[], fraction: number): number {
  if (values.length === 0) {
    return Number.NaN;
  }
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) {
    return Number.NaN;
  }
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Median, minimum, maximum and spread ((max − min) ÷ median, in percent) of one figure over several runs. */
export interface RunSummary {
  median: number;
  min: number;
  max: number;
  spreadPercent: number;
  runs: number[];
}

export function summarize(runs: readonly number[]): RunSummary {
  const middle = median(runs);
  const min = Math.min(...runs);
  const max = Math.max(...runs);
  return {
    median: round(middle),
    min: round(min),
    max: round(max),
    spreadPercent: middle === 0 ? 0 : round(((max - min) / middle) * 100),
    runs: runs.map((value) => round(value)),
  };
}

export function round(value: number, digits = 2): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

export interface MachineFacts {
  node: string;
  cpuModel: string;
  cpuCount: number;
  memoryMiB: number;
  openFilesLimit: string;
  loadAverage1m: number;
  date: string;
}

export function machineFacts(): MachineFacts {
  return {
    node: process.version,
    cpuModel: cpuModel(),
    cpuCount: cpus().length,
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    openFilesLimit: openFilesLimit(),
    loadAverage1m: round(loadavg()[0]),
    date: new Date().toISOString(),
  };
}

export function loadAverage(): number {
  return round(loadavg()[0]);
}

function cpuModel(): string {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (match) {
      return match[1];
    }
  } catch {
    // Not Linux: fall back to what Node reports.
  }
  return cpus()[0]?.model ?? 'unknown';
}

/** Returns the soft limit on open files of this process, from /proc on Linux. */
function openFilesLimit(): string {
  try {
    const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (match) {
      return `${match[1]} (hard ${match[2]})`;
    }
  } catch {
    // Not Linux.
  }
  return 'unknown';
}

/** Returns a sleep promise; used between alternating batches so queues drain. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
