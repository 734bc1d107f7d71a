// Kernel benchmarks at MusicGen's shapes, each beside the machine's measured limits: memory bandwidth (a GPU
// copy kernel, a GPU read kernel, copyBufferToBuffer, and a CPU memcpy), so every GB/s reads as a fraction of
// what the memory gives. matmul in GFLOP/s (and, for decode rows, the weight bytes it streams in GB/s; ≤ 8 rows
// take the library's decode gemv), and EnCodec's conv shapes. There is no f16 matmul path (weights are f32).

import { Tensor, tidy } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import * as ops from '../ops.js';
import { now, randomF32, spread, table, timeGpu, timeCpu, type Spread } from './util.js';

export interface Bandwidth {
  /** GB/s (bytes read + written) of a vec4 copy kernel over 64 MiB. */
  gpuCopy: Spread;
  /** GB/s of a kernel that only reads (vec4 loads, neighbouring lanes at neighbouring addresses), 1 GiB in all. */
  gpuRead: Spread;
  /** GB/s (read + written) of copyBufferToBuffer. */
  gpuBufferCopy: Spread;
  /** GB/s (read + written) of TypedArray.set over 512 MiB, one JS thread. */
  cpuMemcpy: Spread;
  /** GB/s read by Buffer.compare of two equal 512 MiB buffers (memcmp), one thread. */
  cpuRead: Spread;
  /** The same on every core at once (one worker thread per core, each its own 2×256 MiB): the machine's read bandwidth. */
  cpuReadAllCores: Spread;
  /** µs per dispatch of a tiny kernel, many in one submit (bind group made per dispatch, as the runtime does). */
  dispatchUs: Spread;
}

const MiB = 1 << 20;

const COPY = `
struct P { n4: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<vec4<f32>>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i < p.n4) { Y[i] = X[i]; }
}`;

// each invocation sums 16 vec4s strided by the grid (neighbouring lanes, neighbouring addresses): the fastest of
// the read patterns tried on lavapipe (one vec4 per invocation, contiguous per lane, workgroup-blocked: 3–5 GB/s)
const READ_PER = 16;
const READ = `
struct P { n4: u32, inv: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * 256u;
  if (t >= p.inv) { return; }
  var acc = vec4<f32>(0.0);
  for (var j = 0u; j < ${READ_PER}u; j++) { acc += X[t + j * p.inv]; }
  if (acc.x == 12345.5) { Y[t % 1024u] = acc.y; } // never true: keeps the loads
}`;

const TINY = `
struct P { n: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x < p.n) { Y[gid.x] = Y[gid.x] + 1.0; }
}`;

/**
 * Working sets are larger than the last-level cache (this machine's L3 is 480 MiB): the GPU tests rotate over
 * 1 GiB of 64 MiB buffers (one storage binding holds at most 128 MiB on lavapipe), the CPU ones over 2 × 512 MiB.
 */
export async function measureBandwidth(rt: Runtime, quick = false): Promise<Bandwidth> {
  const rounds = quick ? 3 : 5;
  const bytes = 64 * MiB;
  const nBuf = 16;
  const n4 = bytes / 16;
  const xs = replicate(rt, Tensor.from(randomF32(bytes / 4, 3), [bytes / 4], 'f32', rt), nBuf);
  const ys = Array.from({ length: nBuf / 2 }, () => Tensor.empty([bytes / 4], 'f32', rt));
  let i = 0;
  const copy = await timeGpu(rt, () => {
    const k = i++ % ys.length;
    rt.dispatch({ shader: 'bench_copy', code: COPY, params: { n4 }, bindings: [xs[k].binding(), ys[k].binding()], workgroups: rt.grid(Math.ceil(n4 / 64)) });
  }, { iters: ys.length, rounds });
  const inv = n4 / READ_PER;
  const sums = Tensor.zeros([1024], 'f32', rt);
  const read = await timeGpu(rt, () => rt.dispatch({
    shader: 'bench_read', code: READ, params: { n4, inv }, bindings: [xs[i++ % nBuf].binding(), sums.binding()], workgroups: rt.grid(Math.ceil(inv / 256)),
  }), { iters: nBuf, rounds });
  const bufCopy = await timeGpu(rt, () => { const k = i++ % ys.length; rt.copy(xs[k].buffer, 0, ys[k].buffer, 0, bytes); }, { iters: ys.length, rounds });

  const tiny = Tensor.zeros([64], 'f32', rt);
  const nTiny = 500;
  const disp = await timeGpu(rt, () => {
    for (let j = 0; j < nTiny; j++) rt.dispatch({ shader: 'bench_tiny', code: TINY, params: { n: 64 }, bindings: [tiny.binding()], workgroups: [1] });
  }, { iters: 2, rounds });
  for (const t of [...xs, ...ys, sums, tiny]) t.dispose();
  rt.trimPool();

  const big = 512 * MiB;
  const a = new Float32Array(big / 4).fill(1);
  const b = new Float32Array(big / 4);
  const memcpy = timeCpu(() => b.set(a), { iters: 2, rounds });
  const ba = Buffer.from(a.buffer);
  const bb = Buffer.from(b.buffer);
  b.set(a);
  const cmp = timeCpu(() => { if (Buffer.compare(ba, bb) !== 0) throw new Error('memcmp differs'); }, { iters: 2, rounds });
  return {
    gpuCopy: gbOf(2 * bytes, copy.ms),
    gpuRead: gbOf(bytes, read.ms),
    gpuBufferCopy: gbOf(2 * bytes, bufCopy.ms),
    cpuMemcpy: gbOf(2 * big, memcpy),
    cpuRead: gbOf(2 * big, cmp),
    cpuReadAllCores: await cpuReadAllCores(rounds),
    dispatchUs: { median: (disp.ms.median * 1000) / nTiny, min: (disp.ms.min * 1000) / nTiny, max: (disp.ms.max * 1000) / nTiny, n: disp.ms.n },
  };
}

/** `n` GPU copies of `t` (t itself first). */
function replicate(rt: Runtime, t: Tensor, n: number): Tensor[] {
  const out = [t];
  for (let i = 1; i < n; i++) {
    const c = Tensor.empty(t.shape, t.dtype, rt);
    rt.copy(t.buffer, 0, c.buffer, 0, t.bytes);
    out.push(c);
  }
  return out;
}

/** memcmp on every core at once (worker threads): GB/s read, all threads together. */
async function cpuReadAllCores(rounds: number): Promise<Spread> {
  const { Worker } = await import('node:worker_threads');
  const { availableParallelism } = await import('node:os');
  const n = availableParallelism();
  const bytes = 256 * MiB;
  const code = `
const { parentPort, workerData } = require('node:worker_threads');
const a = Buffer.alloc(workerData.bytes, 1), b = Buffer.alloc(workerData.bytes, 1);
Buffer.compare(a, b);
parentPort.on('message', (iters) => {
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) if (Buffer.compare(a, b) !== 0) throw new Error('differs');
  parentPort.postMessage(performance.now() - t0);
});
parentPort.postMessage('ready');`;
  const workers = Array.from({ length: n }, () => new Worker(code, { eval: true, workerData: { bytes } }));
  const next = (w: InstanceType<typeof Worker>): Promise<unknown> => new Promise((res, rej) => { w.once('message', res); w.once('error', rej); });
  try {
    await Promise.all(workers.map(next));
    const per: number[] = [];
    const iters = 2;
    for (let r = 0; r < rounds; r++) {
      const t0 = now();
      const done = workers.map(next);
      for (const w of workers) w.postMessage(iters);
      await Promise.all(done);
      per.push(now() - t0);
    }
    return gbOf(n * iters * 2 * bytes, spread(per));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

function gbOf(b: number, ms: Spread): Spread {
  const f = (t: number) => b / 1e9 / (t / 1000);
  return { median: f(ms.median), min: f(ms.max), max: f(ms.min), n: ms.n };
}

export interface MatmulCase {
  name: string;
  M: number;
  N: number;
  K: number;
}

/** Linear layers of MusicGen-small (x [M, K] · Wᵀ, W [N, K]). */
export const MATMUL_CASES: MatmulCase[] = [
  { name: 'T5 prefill q/k/v/o [16x768]x[768x768]', M: 16, N: 768, K: 768 },
  { name: 'T5 prefill FFN in [16x768]x[768x3072]', M: 16, N: 3072, K: 768 },
  { name: 'T5 prefill FFN out [16x3072]x[3072x768]', M: 16, N: 768, K: 3072 },
  { name: 'LM decode attn [2x1024]x[1024x1024]', M: 2, N: 1024, K: 1024 },
  { name: 'LM decode fc1 [2x1024]x[1024x4096]', M: 2, N: 4096, K: 1024 },
  { name: 'LM decode fc2 [2x4096]x[4096x1024]', M: 2, N: 1024, K: 4096 },
  { name: 'LM decode heads [2x1024]x[1024x8192]', M: 2, N: 8192, K: 1024 },
  { name: 'LM decode fc1, 4 prompts [8x1024]x[1024x4096]', M: 8, N: 4096, K: 1024 },
  { name: 'LM decode heads, 4 prompts [8x1024]x[1024x8192]', M: 8, N: 8192, K: 1024 },
];

export interface MatmulResult extends MatmulCase {
  kernel: string;
  ms: number;
  gflops: number;
  /** Weight bytes streamed per second (N·K·bytes / time). */
  weightGBs: number;
}

/** Distinct weight copies per case, so the weights stream from memory as in decoding (≥ 768 MiB > the L3). */
function copiesFor(N: number, K: number): number {
  return Math.max(2, Math.ceil((768 * MiB) / (N * K * 4)));
}

export async function benchMatmuls(rt: Runtime, cases: MatmulCase[], quick = false): Promise<MatmulResult[]> {
  const out: MatmulResult[] = [];
  const rounds = quick ? 2 : 3;
  for (const c of cases) {
    const copies = copiesFor(c.N, c.K);
    const ws = replicate(rt, Tensor.from(randomF32(c.N * c.K, 11, 0.05), [c.N, c.K], 'f32', rt), copies);
    const x = Tensor.from(randomF32(c.M * c.K, 7), [c.M, c.K], 'f32', rt);
    const flops = 2 * c.M * c.N * c.K;
    // every copy once per round, more rounds of calls for the small T5 shapes (≥ 1.5 GFLOP per round)
    const iters = Math.ceil(Math.max(1.5e9 / flops, copies) / copies) * copies;
    let i = 0;
    const lib = await timeGpu(rt, () => { ops.linear(x, ws[i++ % copies]); }, { iters: quick ? Math.ceil(iters / 2) : iters, rounds, flushEach: false });
    out.push({ ...c, kernel: 'library matmul (f32)', ms: lib.ms.median, gflops: flops / 1e6 / lib.ms.median, weightGBs: (c.N * c.K * 4) / 1e6 / lib.ms.median });
    x.dispose();
    for (const w of ws) w.dispose();
    rt.trimPool();
  }
  return out;
}

export interface ConvCase {
  name: string;
  transpose: boolean;
  Cin: number;
  Cout: number;
  K: number;
  stride: number;
  dilation: number;
  /** input length */
  T: number;
}

/** EnCodec 32 kHz decoder convs for 2 s (100 frames). */
export const CONV_CASES: ConvCase[] = [
  { name: 'conv0 128->1024 k7 @50Hz', transpose: false, Cin: 128, Cout: 1024, K: 7, stride: 1, dilation: 1, T: 106 },
  { name: 'convT 1024->512 k16 s8 (100->800)', transpose: true, Cin: 1024, Cout: 512, K: 16, stride: 8, dilation: 1, T: 100 },
  { name: 'res 512->256 k3 @800', transpose: false, Cin: 512, Cout: 256, K: 3, stride: 1, dilation: 1, T: 802 },
  { name: 'convT 256->128 k8 s4 (4000->16000)', transpose: true, Cin: 256, Cout: 128, K: 8, stride: 4, dilation: 1, T: 4000 },
  { name: 'convT 128->64 k8 s4 (16000->64000)', transpose: true, Cin: 128, Cout: 64, K: 8, stride: 4, dilation: 1, T: 16000 },
  { name: 'res 64->32 k3 @64000', transpose: false, Cin: 64, Cout: 32, K: 3, stride: 1, dilation: 1, T: 64002 },
  { name: 'res 32->64 k1 @64000', transpose: false, Cin: 32, Cout: 64, K: 1, stride: 1, dilation: 1, T: 64000 },
  { name: 'final 64->1 k7 @64000', transpose: false, Cin: 64, Cout: 1, K: 7, stride: 1, dilation: 1, T: 64006 },
];

export interface ConvResult extends ConvCase {
  ms: number;
  gflops: number;
  /** Output samples (all channels) per second, millions. */
  msamples: number;
}

export async function benchConvs(rt: Runtime, cases: ConvCase[], quick = false): Promise<ConvResult[]> {
  const out: ConvResult[] = [];
  for (const c of cases) {
    const x = Tensor.from(randomF32(c.Cin * c.T, 5), [1, c.Cin, c.T], 'f32', rt);
    const w = Tensor.from(randomF32(c.Cin * c.Cout * c.K, 9, 0.1), c.transpose ? [c.Cin, c.Cout, c.K] : [c.Cout, c.Cin, c.K], 'f32', rt);
    const b = Tensor.from(randomF32(c.Cout, 2, 0.1), [c.Cout], 'f32', rt);
    const f = (): Tensor => c.transpose
      ? ops.convTranspose1d(x, w, b, { stride: c.stride })
      : ops.conv1d(x, w, b, { stride: c.stride, dilation: c.dilation });
    const y = tidy(f);
    const Tout = y.shape[2];
    y.dispose();
    const macs = c.transpose ? c.Cin * c.Cout * c.K * c.T : c.Cin * c.Cout * c.K * Tout;
    const iters = Math.max(1, Math.min(20, Math.ceil(0.5e9 / macs)));
    const t = await timeGpu(rt, () => { f(); }, { iters: quick ? Math.ceil(iters / 2) : iters, rounds: quick ? 2 : 3, flushEach: false });
    out.push({ ...c, ms: t.ms.median, gflops: (2 * macs) / 1e6 / t.ms.median, msamples: (c.Cout * Tout) / 1e3 / t.ms.median });
    for (const tt of [x, w, b]) tt.dispose();
  }
  return out;
}

export interface KernelBench {
  bandwidth: Bandwidth;
  matmul: MatmulResult[];
  conv: ConvResult[];
  f16: string;
  seconds: number;
}

export async function runKernelBench(rt: Runtime, o: { quick: boolean; log: (s: string) => void; say: (s: string) => void }): Promise<KernelBench> {
  const t0 = now();
  o.log('kernels: memory bandwidth…');
  const bw = await measureBandwidth(rt, o.quick);
  const f = (s: Spread, d = 1) => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;
  o.say('\nMemory bandwidth (GB/s, median (min–max))');
  o.say(table(['measure', 'GB/s'], [
    ['GPU copy kernel, vec4 (read + write), 512 MiB', f(bw.gpuCopy)],
    ['GPU read kernel, vec4 (read), 1 GiB', f(bw.gpuRead)],
    ['GPU copyBufferToBuffer (read + write), 512 MiB', f(bw.gpuBufferCopy)],
    ['CPU memcpy (TypedArray.set) 512 MiB (read + write), 1 thread', f(bw.cpuMemcpy)],
    ['CPU memcmp (Buffer.compare) 2x512 MiB (read), 1 thread', f(bw.cpuRead)],
    ['CPU memcmp, one thread per core (read), all cores', f(bw.cpuReadAllCores)],
  ]));
  o.say(`dispatch cost: ${f(bw.dispatchUs)} µs per tiny dispatch (500 in one submit)`);
  const limit = bw.gpuRead.median;

  o.log('kernels: matmul…');
  const mm = await benchMatmuls(rt, MATMUL_CASES, o.quick);
  o.say(`\nmatmul (f32 unless noted; % of bandwidth = weight GB/s ÷ GPU read kernel ${limit.toFixed(1)} GB/s)`);
  o.say(table(['shape', 'kernel', 'ms', 'GFLOP/s', 'weights GB/s', '% of bw'], mm.map((r) => [
    r.name, r.kernel, r.ms.toFixed(3), r.gflops.toFixed(1), r.weightGBs.toFixed(2), `${((100 * r.weightGBs) / limit).toFixed(0)}%`,
  ])));
  const f16 = 'no f16 path in the library: weights and activations are f32 (the adapter has shader-f16)';
  o.say(f16);

  o.log('kernels: conv…');
  const conv = await benchConvs(rt, CONV_CASES, o.quick);
  o.say('\nEnCodec decoder convs (2 s of audio)');
  o.say(table(['conv', 'ms', 'GFLOP/s', 'Msamples/s'], conv.map((r) => [r.name, r.ms.toFixed(2), r.gflops.toFixed(2), r.msamples.toFixed(1)])));
  return { bandwidth: bw, matmul: mm, conv, f16, seconds: (now() - t0) / 1000 };
}

