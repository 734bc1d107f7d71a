// Transposed 1-D convolution (PyTorch ConvTranspose1d) as a gather split by stride phase, conv_transpose1d.wgsl's
// maths and uniforms laid out for llvmpipe as conv1d_sg.wgsl is:
//   Y[b, o, t] = bias[o] + Σ_{i in o's group, k : t + pad = stride·m + k·dil, 0 ≤ m < T} X[b, i, m] · W[i, o − g·CoutG, k]
// X [B, Cin, T], Y [B, Cout, Tout]. The weight comes tap-major, WK [K, Cin, CoutG] (the wrapper permutes
// PyTorch's [Cin, CoutG, K]): a load instruction costs the same on llvmpipe whatever the lanes' addresses, but
// with PyTorch's layout the 8 lanes' weights sit in 8 cache lines (16 taps apart) that each of a workgroup's 8
// SIMD passes fetches again from memory: 2.5× slower on EnCodec's 1024 → 512 layer.
//
// For one phase r = (t + pad) mod stride the taps with k·dil ≡ r contribute to every step q = r + stride·m, so
// the tap loop is uniform. A workgroup computes 16 output channels × 64·CN values of m; each invocation owns
// CN of them, 64 apart. Per (tap, i), lane l loads the weights of channels oc0 + (l mod 8) and
// oc0 + 8 + (l mod 8) and its CN input samples, and the 16 weights reach every lane by subgroupShuffle:
// 2 + CN loads feed 16·CN FMAs (conv_transpose1d.wgsl: 4 + CO for 4·CO). Needs subgroups of ≥ 8 lanes.
// Grid: x ⌈nM / (64·CN)⌉, y = stride × groups × ⌈CoutG / 16⌉, z batch.

enable subgroups;

const CN = 4u;

#include "lib/conv_transpose1d_io.wgsl"

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
  let r = wg.y % p.stride;
  let rest = wg.y / p.stride;
  let g = rest / p.coBlocks;
  let oc0 = (rest % p.coBlocks) * 16u;
  let b = wg.z;
  // the weight columns this lane loads for the others (clamped to the group: extra channels are not stored)
  let oc = min(vec2<u32>(oc0, oc0 + 8u) + (lane & 7u), vec2<u32>(p.CoutG - 1u));
  var m: array<i32, CN>;
  for (var c = 0u; c < CN; c++) { m[c] = i32(p.mLo + wg.x * 64u * CN + 64u * c + lid.x); }
  let T = i32(p.T);
  let xBatch = (b * p.Cin + g * p.CinG) * p.T;

  var acc: array<array<f32, 16>, CN>;
  for (var k = 0u; k < p.K; k++) {
    let kd = k * p.dil;
    if (kd % p.stride != r) { continue; }
    let off = i32((kd - r) / p.stride); // input index m − off (kd ≥ r and kd ≡ r)
    for (var i = 0u; i < p.CinG; i++) {
      let xRow = xBatch + i * p.T;
      let wRow = (k * p.Cin + g * p.CinG + i) * p.CoutG;
      let wv = vec2<f32>(WK[wRow + oc.x], WK[wRow + oc.y]);
      var xv: array<f32, CN>;
      for (var c = 0u; c < CN; c++) {
        let s = m[c] - off;
        xv[c] = select(0.0, X[xRow + u32(clamp(s, 0, T - 1))], s >= 0 && s < T);
      }
      for (var rr = 0u; rr < 8u; rr++) {
        let w = subgroupShuffle(wv, rr);
        for (var c = 0u; c < CN; c++) {
          acc[c][rr] = fma(w.x, xv[c], acc[c][rr]);
          acc[c][rr + 8u] = fma(w.y, xv[c], acc[c][rr + 8u]);
        }
      }
    }
  }

  let rows = min(16u, p.CoutG - oc0);
  for (var c = 0u; c < CN; c++) {
    if (wg.x * 64u * CN + 64u * c + lid.x >= p.nM) { break; }
    let t = i32(r) + i32(p.stride) * m[c] - i32(p.pad);
    if (t < 0 || t >= i32(p.Tout)) { continue; }
    for (var o = 0u; o < rows; o++) {
      let oo = g * p.CoutG + oc0 + o;
      var bv = 0.0;
      if (p.hasBias != 0u) { bv = Bias[oo]; }
      Y[(b * p.Cout + oo) * p.Tout + u32(t)] = acc[c][o] + bv;
    }
  }
}
