// scratch: which read pattern gets the most bandwidth out of lavapipe
import { Tensor } from '../tensor.js';
import { initRuntime } from '../runtime.js';
import { randomF32, timeGpu } from './util.js';
const rt = await initRuntime();
const bytes = 64 << 20; const n4 = bytes / 16;
const x = Tensor.from(randomF32(bytes / 4, 3), [bytes / 4], 'f32', rt);
const y = Tensor.zeros([1 << 20], 'f32', rt);
const hdr = (wg: number) => `struct P { n4: u32, per: u32, inv: u32, _c: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * ${wg}u;
  if (t >= p.inv) { return; }
  var acc = vec4<f32>(0.0);`;
const tail = `  if (acc.x == 12345.5) { Y[t % 1024u] = acc.y; } }`;
const variants: Record<string, { code: string; per: number; wg: number }> = {};
for (const wg of [64, 256]) {
  variants[`one vec4/inv wg${wg}`] = { per: 1, wg, code: hdr(wg) + `acc = X[t];` + tail };
  for (const per of [4, 16, 64]) {
    variants[`${per} strided-by-grid wg${wg}`] = { per, wg, code: hdr(wg) + `for (var j = 0u; j < p.per; j++) { acc += X[t + j * p.inv]; }` + tail };
    variants[`${per} contiguous-per-lane wg${wg}`] = { per, wg, code: hdr(wg) + `for (var j = 0u; j < p.per; j++) { acc += X[t * p.per + j]; }` + tail };
    variants[`${per} wg-blocked wg${wg}`] = { per, wg, code: hdr(wg) + `let wgi = t / ${wg}u; let l = t % ${wg}u; for (var j = 0u; j < p.per; j++) { acc += X[(wgi * p.per + j) * ${wg}u + l]; }` + tail };
  }
}
for (const [name, v] of Object.entries(variants)) {
  const inv = n4 / v.per;
  const t = await timeGpu(rt, () => rt.dispatch({ shader: 'scr_' + name.replace(/\W/g, '_'), code: v.code, params: [n4, v.per, inv, 0], bindings: [x.binding(), y.binding()], workgroups: rt.grid(Math.ceil(inv / v.wg)) }), { iters: 5, rounds: 3 });
  console.log(name.padEnd(32), (bytes / 1e6 / t.ms.median).toFixed(2), 'GB/s', `(${(bytes / 1e6 / t.ms.max).toFixed(2)}–${(bytes / 1e6 / t.ms.min).toFixed(2)})`);
}
process.exit(0);
