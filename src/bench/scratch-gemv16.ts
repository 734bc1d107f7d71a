// scratch: subgroup gemv with f16 weights packed along K ([N, K/8] of vec4<u32>), rows = 2
import { Tensor, tidy } from '../tensor.js';
import { initRuntime } from '../runtime.js';
import * as ops from '../ops.js';
import { randomF32, timeGpu } from './util.js';
const rt = await initRuntime();
const shapes = [[1024, 1024], [4096, 1024], [1024, 4096], [8192, 1024]];
const sg16 = (RO: number, wg: number) => `
enable subgroups;
struct P { N: u32, K: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let n0 = (gid.x / sgs) * ${RO}u;
  let K4 = p.K / 4u; let K8 = p.K / 8u;
${Array.from({ length: RO }, (_, j) => `  var a${j} = vec2<f32>(0.0); let w${j} = min(n0 + ${j}u, p.N - 1u) * K8;`).join('\n')}
  for (var k8 = lane; k8 < K8; k8 += sgs) {
    let x0a = X[2u * k8]; let x0b = X[2u * k8 + 1u]; let x1a = X[K4 + 2u * k8]; let x1b = X[K4 + 2u * k8 + 1u];
${Array.from({ length: RO }, (_, j) => `    { let u = W[w${j} + k8]; let wa = vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y)); let wb = vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
      a${j} += vec2<f32>(dot(x0a, wa) + dot(x0b, wb), dot(x1a, wa) + dot(x1b, wb)); }`).join('\n')}
  }
${Array.from({ length: RO }, (_, j) => `  { let s = vec2<f32>(subgroupAdd(a${j}.x), subgroupAdd(a${j}.y)); if (lane == 0u && n0 + ${j}u < p.N) { Y[n0 + ${j}u] = s.x; Y[p.N + n0 + ${j}u] = s.y; } }`).join('\n')}
}`;
const pack = `
struct P { n2: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> W: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> O: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u; if (i < p.n2) { O[i] = pack2x16float(W[i]); }
}`;
async function maxErr(a: Tensor, b: Tensor) { const x = await a.read() as Float32Array, y = await b.read() as Float32Array; let m = 0; for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i])); return m; }
for (const [N, K] of shapes) {
  const copies = Math.max(2, Math.ceil((96 << 20) / (N * K * 2)));
  const ws = Array.from({ length: copies }, (_, i) => Tensor.from(randomF32(N * K, 11 + i, 0.05), [N, K], 'f32', rt));
  const w16 = ws.map((w) => { const o = Tensor.empty([N * K / 2], 'i32', rt); rt.dispatch({ shader: 'scr_pack', code: pack, params: [N * K / 2, 0, 0, 0], bindings: [w.binding(), o.binding()], workgroups: rt.grid(Math.ceil(N * K / 2 / 64)) }); return o; });
  for (let i = 1; i < copies; i++) ws[i].dispose();
  const x = Tensor.from(randomF32(2 * K, 7), [2, K], 'f32', rt);
  const ref = tidy(() => ops.linear(x, ws[0]));
  for (const RO of [2, 4, 8]) for (const wg of [64, 256]) {
    const name = `sg16 RO${RO} wg${wg}`;
    const run = (w: Tensor) => { const y = Tensor.empty([2, N], 'f32', rt); rt.dispatch({ shader: 'scr_' + name.replace(/\W/g, '_'), code: sg16(RO, wg), params: [N, K, 0, 0], bindings: [x.binding(), w.binding(), y.binding()], workgroups: rt.grid(Math.ceil((N / RO) * 8 / wg)) }); return y; };
    const y = run(w16[0]); const err = await maxErr(ref, y); y.dispose();
    let j = 0;
    const t = await timeGpu(rt, () => { run(w16[j++ % copies]); }, { iters: copies * 4, rounds: 3, flushEach: false });
    console.log(`[2x${K}]x[${K}x${N}]`.padEnd(22), name.padEnd(20), t.ms.median.toFixed(3).padStart(8), 'ms', ((N * K * 2) / 1e6 / t.ms.median).toFixed(2).padStart(6), 'GB/s f16,', ((N * K * 4) / 1e6 / t.ms.median).toFixed(2).padStart(6), 'GB/s f32-equiv', err.toExponential(1));
  }
  for (const t of [ws[0], ...w16, x, ref]) t.dispose();
}
process.exit(0);
