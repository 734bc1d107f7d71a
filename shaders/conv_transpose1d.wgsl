// Transposed 1-D convolution (PyTorch ConvTranspose1d), written as a gather so no two invocations write the
// same output:
//   Y[b, o, t] = bias[o] + Σ_{i in o's group, k : t + pad = stride·m + k·dil, 0 ≤ m < T} X[b, i, m] · W[i, o − g·CoutG, k]
// X [B, Cin, T], Y [B, Cout, Tout] (Tout given, so output_padding and trimming are free). The weight comes
// tap-major, WK [K, Cin, CoutG] (the wrapper permutes PyTorch's [Cin, CoutG, K]): for one tap and input channel
// the CO output channels of a block are then adjacent in memory.
//
// Output steps are split by phase r = (t + pad) mod stride: for one phase the kernel taps that contribute are
// the same for every step (k·dil ≡ r), so the tap loop is uniform and skips the others without waste. Within a
// phase, steps are q = r + stride·m; each invocation computes CO output channels × 4 values of m (64 apart), so
// neighbouring invocations read neighbouring input samples. The weights are uniform across the workgroup (loaded
// once by llvmpipe) and each gathered input sample feeds CO FMAs: CO = 16 measured ~2× faster than 4 on
// llvmpipe; the wrapper substitutes a smaller CO when there are fewer output channels per group.
// Grid: x tiles of 256 m's, y = stride × groups × channel blocks of CO, z batch.

const CO = 16u;

#include "lib/conv_transpose1d_io.wgsl"

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let r = wg.y % p.stride;
  let rest = wg.y / p.stride;
  let g = rest / p.coBlocks;
  let oc0 = (rest % p.coBlocks) * CO;
  let b = wg.z;
  let mi = wg.x * 256u + lid.x;
  if (mi >= p.nM) { return; }
  let m0 = i32(p.mLo + mi);

  // output channel of each accumulator (clamped to the group: extra channels compute but are not stored)
  var wCol: array<u32, CO>;
  for (var c = 0u; c < CO; c++) { wCol[c] = min(oc0 + c, p.CoutG - 1u); }
  let T = i32(p.T);
  let xBatch = (b * p.Cin + g * p.CinG) * p.T;
  let s = i32(p.stride);

  var acc: array<vec4<f32>, CO>;
  for (var k = 0u; k < p.K; k++) {
    let kd = k * p.dil;
    if (kd % p.stride != r) { continue; }
    // input index m − off for every step of this phase (off ≥ 0: kd ≥ r and kd ≡ r)
    let i0 = m0 - i32((kd - r) / p.stride);
    let interior = i0 >= 0 && i0 + 192 < T;
    for (var i = 0u; i < p.CinG; i++) {
      let xRow = xBatch + i * p.T;
      var xv: vec4<f32>;
      if (interior) {
        let q = xRow + u32(i0);
        xv = vec4<f32>(X[q], X[q + 64u], X[q + 128u], X[q + 192u]);
      } else {
        for (var j = 0; j < 4; j++) {
          let ii = i0 + 64 * j;
          let v = X[xRow + u32(clamp(ii, 0, T - 1))];
          xv[j] = select(0.0, v, ii >= 0 && ii < T);
        }
      }
      let wRow = (k * p.Cin + g * p.CinG + i) * p.CoutG;
      for (var c = 0u; c < CO; c++) { acc[c] += WK[wRow + wCol[c]] * xv; }
    }
  }

  // the block's channels past the group's last (when CoutG is not a multiple of CO) are not stored
  for (var c = 0u; c < min(CO, p.CoutG - oc0); c++) {
    let o = g * p.CoutG + oc0 + c;
    var bv = 0.0;
    if (p.hasBias != 0u) { bv = Bias[o]; }
    let yRow = (b * p.Cout + o) * p.Tout;
    for (var j = 0; j < 4; j++) {
      if (mi + 64u * u32(j) >= p.nM) { break; }
      let t = i32(r) + s * (m0 + 64 * j) - i32(p.pad);
      if (t >= 0 && t < i32(p.Tout)) {
        Y[yRow + u32(t)] = acc[c][j] + bv;
      }
    }
  }
}
