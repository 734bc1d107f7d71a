// scratch: decode gemv variants (rows = 2) on lavapipe
import { Tensor, tidy } from '../tensor.js';
import { initRuntime } from '../runtime.js';
import * as ops from '../ops.js';
import { randomF32, timeGpu } from './util.js';
import { protoWeight } from './gemv-proto.js';
const rt = await initRuntime();
const shapes = [[1024, 1024], [4096, 1024], [1024, 4096], [8192, 1024]];
const which = (process.argv[2] ?? 'all');
// subgroup variant, [N, K] layout, R = 2 unrolled, RO rows per subgroup
const sg = (RO: number, wg: number, unrollK: number) => `
enable subgroups;
struct P { N: u32, K: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let n0 = (gid.x / sgs) * ${RO}u;
  let K4 = p.K / 4u;
${Array.from({ length: RO }, (_, j) => `  var a${j} = vec2<f32>(0.0); let w${j} = min(n0 + ${j}u, p.N - 1u) * K4;`).join('\n')}
  for (var k4 = lane; k4 < K4; k4 += sgs * ${unrollK}u) {
${Array.from({ length: unrollK }, (_, u) => `    { let kk = k4 + ${u}u * sgs; let x0 = X[kk]; let x1 = X[K4 + kk];
${Array.from({ length: RO }, (_, j) => `      { let w = W[w${j} + kk]; a${j} += vec2<f32>(dot(x0, w), dot(x1, w)); }`).join('\n')} }`).join('\n')}
  }
${Array.from({ length: RO }, (_, j) => `  { let s = vec2<f32>(subgroupAdd(a${j}.x), subgroupAdd(a${j}.y)); if (lane == 0u && n0 + ${j}u < p.N) { Y[n0 + ${j}u] = s.x; Y[p.N + n0 + ${j}u] = s.y; } }`).join('\n')}
}`;
// coalesced [K, N] layout, R = 2 unrolled, 4 outputs per invocation
const co = (wg: number) => `
struct P { N4: u32, K: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> Y: array<vec4<f32>>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n4 = gid.x; if (n4 >= p.N4) { return; }
  let K4 = p.K / 4u;
  var a0 = vec4<f32>(0.0); var a1 = vec4<f32>(0.0);
  for (var k4 = 0u; k4 < K4; k4++) {
    let b = 4u * k4 * p.N4 + n4;
    let w0 = W[b]; let w1 = W[b + p.N4]; let w2 = W[b + 2u * p.N4]; let w3 = W[b + 3u * p.N4];
    let x0 = X[k4]; let x1 = X[K4 + k4];
    a0 += x0.x * w0 + x0.y * w1 + x0.z * w2 + x0.w * w3;
    a1 += x1.x * w0 + x1.y * w1 + x1.z * w2 + x1.w * w3;
  }
  Y[n4] = a0; Y[p.N4 + n4] = a1;
}`;
async function maxErr(a: Tensor, b: Tensor) { const x = await a.read() as Float32Array, y = await b.read() as Float32Array; let m = 0; for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i])); return m; }
for (const [N, K] of shapes) {
  const copies = Math.max(2, Math.ceil((96 << 20) / (N * K * 4)));
  const ws = Array.from({ length: copies }, (_, i) => Tensor.from(randomF32(N * K, 11 + i, 0.05), [N, K], 'f32', rt));
  const wt = which.includes('co') || which === 'all' ? ws.map((w) => protoWeight('coalesced', w)) : [];
  const x = Tensor.from(randomF32(2 * K, 7), [2, K], 'f32', rt);
  const ref = tidy(() => ops.linear(x, ws[0]));
  const iters = copies * 4;
  const line = (name: string, ms: number, err?: number) => console.log(`[2x${K}]x[${K}x${N}]`.padEnd(22), name.padEnd(26), ms.toFixed(3).padStart(8), 'ms', ((N * K * 4) / 1e6 / ms).toFixed(2).padStart(6), 'GB/s', err === undefined ? '' : err.toExponential(1));
  let i = 0;
  const lib = await timeGpu(rt, () => { ops.linear(x, ws[i++ % copies]); }, { iters, rounds: 3, flushEach: false });
  line('library', lib.ms.median);
  const variants: [string, string, number, 'sg' | 'co', number][] = [];
  for (const RO of [2, 4, 8]) for (const wg of [64, 256]) for (const u of [1, 2]) variants.push([`sg RO${RO} wg${wg} u${u}`, sg(RO, wg, u), RO, 'sg', wg]);
  for (const wg of [8, 16, 32, 64]) variants.push([`coalesced wg${wg}`, co(wg), 0, 'co', wg]);
  for (const [name, code, RO, kind, wg] of variants) {
    if (which !== 'all' && !name.startsWith(which)) continue;
    const run = (w: Tensor) => {
      const y = Tensor.empty([2, N], 'f32', rt);
      if (kind === 'sg') rt.dispatch({ shader: 'scr_' + name.replace(/\W/g, '_'), code, params: [N, K, 0, 0], bindings: [x.binding(), w.binding(), y.binding()], workgroups: rt.grid(Math.ceil((N / RO) * 8 / wg)) });
      else rt.dispatch({ shader: 'scr_' + name.replace(/\W/g, '_'), code, params: [N / 4, K, 0, 0], bindings: [x.binding(), w.binding(), y.binding()], workgroups: rt.grid(Math.ceil(N / 4 / wg)) });
      return y;
    };
    const src = kind === 'sg' ? ws : wt;
    const y = run(src[0]); const err = await maxErr(ref, y); y.dispose();
    let j = 0;
    const t = await timeGpu(rt, () => { run(src[j++ % copies]); }, { iters, rounds: 3, flushEach: false });
    line(name, t.ms.median, err);
  }
  for (const t of [...ws, ...wt, x, ref]) t.dispose();
}
process.exit(0);
