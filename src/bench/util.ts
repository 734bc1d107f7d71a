// Timing helpers shared by the benchmarks: wall-clock time around GPU work, measured only after `rt.sync()`
// so everything recorded before the clock starts has finished and everything measured has run.

import { tidy } from '../tensor.js';
import type { Runtime } from '../runtime.js';

export function now(): number {
  return performance.now();
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function spread(xs: number[]): Spread {
  if (xs.length === 0) return { median: NaN, min: NaN, max: NaN, n: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], n: s.length };
}

export function median(xs: number[]): number {
  return spread(xs).median;
}

/** "12.3 (11.9–13.0)" */
export function fmtSpread(s: Spread, digits = 1): string {
  if (s.n <= 1) return s.median.toFixed(digits);
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

export interface GpuTiming {
  /** Milliseconds per call: median over the rounds, and the spread. */
  ms: Spread;
  /** Dispatches one call records. */
  dispatches: number;
}

/**
 * Times `fn` (which records GPU work; tensors it makes are freed) as wall time per call: one untimed call
 * (pipeline compilation), then `rounds` rounds of `iters` calls, each round between two `rt.sync()`s. With
 * `flushEach` every call is submitted on its own (as the token loop does per step).
 */
export async function timeGpu(rt: Runtime, fn: () => void, opts: { iters?: number; rounds?: number; flushEach?: boolean } = {}): Promise<GpuTiming> {
  const { iters = 10, rounds = 3, flushEach = true } = opts;
  tidy(fn);
  await rt.sync();
  const d0 = rt.stats.dispatches;
  tidy(fn);
  const dispatches = rt.stats.dispatches - d0;
  await rt.sync();
  const per: number[] = [];
  for (let r = 0; r < rounds; r++) {
    await rt.sync();
    const t0 = now();
    for (let i = 0; i < iters; i++) {
      tidy(fn);
      if (flushEach) rt.flush();
    }
    await rt.sync();
    per.push((now() - t0) / iters);
  }
  return { ms: spread(per), dispatches };
}

/** Times a CPU function (ms per call; median over rounds). */
export function timeCpu(fn: () => void, opts: { iters?: number; rounds?: number } = {}): Spread {
  const { iters = 5, rounds = 3 } = opts;
  fn();
  const per: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = now();
    for (let i = 0; i < iters; i++) fn();
    per.push((now() - t0) / iters);
  }
  return spread(per);
}

/** A fixed-width text table. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  return [line(cells[0]), w.map((n) => '-'.repeat(n)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function deviceName(rt: Runtime): string {
  const a = rt.ctx.adapterInfo;
  return [a.vendor, a.architecture, a.description].filter((s) => s).join(' / ') || 'unknown adapter';
}

/** Deterministic pseudo-random floats in [-scale, scale). */
export function randomF32(n: number, seed = 1, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}
