// 1-D convolution (PyTorch Conv1d, cross-correlation) with stride, dilation, groups and zero padding:
//   Y[b, o, t] = bias[o] + Σ_{i in o's group, k} W[o, i − g·CinG, k] · X[b, i, t·stride − padL + k·dil]
// X [B, Cin, T], W [Cout, CinG, K], Y [B, Cout, Tout]; positions outside [0, T) read as zero, so padL and
// Tout give any left/right zero padding.
//
// Register tiling: each invocation computes CO output channels × 4 time steps; the 4 steps are 64 apart, so the
// 64 invocations of a workgroup cover 256 consecutive steps and neighbouring invocations read neighbouring
// samples (stride 1). The weights are the same across the workgroup, so llvmpipe loads them once (uniform
// loads) while every input sample is a per-lane gather: a large CO makes each gathered sample feed CO FMAs
// (16 measured ~2× faster than 4 on llvmpipe). CO is 16 here; the wrapper substitutes 4 for layers with fewer
// than 16 output channels per group. Grid: x time tiles of 256, y = groups × channel blocks of CO (a block
// never straddles a group), z batch.

const CO = 16u;

#include "lib/conv1d_io.wgsl"

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let g = wg.y / p.coBlocks;
  let oc0 = (wg.y % p.coBlocks) * CO; // first output channel of the block, within the group
  let b = wg.z;
  let t0 = wg.x * 256u + lid.x;
  if (t0 >= p.Tout) { return; }

  // weight rows of the CO channels (clamped to the group: extra channels compute but are not stored)
  var wRow: array<u32, CO>;
  for (var c = 0u; c < CO; c++) {
    wRow[c] = (g * p.CoutG + min(oc0 + c, p.CoutG - 1u)) * p.CinG * p.K;
  }
  // input position of each step at k = 0
  var pos0: array<i32, 4>;
  for (var j = 0u; j < 4u; j++) {
    pos0[j] = i32((t0 + 64u * j) * p.stride) - p.padL;
  }
  let T = i32(p.T);
  let xBatch = (b * p.Cin + g * p.CinG) * p.T;
  // whether no step of this tile reads outside [0, T): then the loads need no masks
  let last = pos0[3] + i32((p.K - 1u) * p.dil);
  let interior = pos0[0] >= 0 && last < T;

  var acc: array<vec4<f32>, CO>;
  for (var i = 0u; i < p.CinG; i++) {
    let xRow = xBatch + i * p.T;
    let wOff = i * p.K;
    for (var k = 0u; k < p.K; k++) {
      let kd = i32(k * p.dil);
      var xv: vec4<f32>;
      if (interior) {
        let q = xRow + u32(pos0[0] + kd);
        let st = 64u * p.stride;
        xv = vec4<f32>(X[q], X[q + st], X[q + 2u * st], X[q + 3u * st]);
      } else {
        for (var j = 0u; j < 4u; j++) {
          let s = pos0[j] + kd;
          let v = X[xRow + u32(clamp(s, 0, T - 1))];
          xv[j] = select(0.0, v, s >= 0 && s < T);
        }
      }
      for (var c = 0u; c < CO; c++) { acc[c] += W[wRow[c] + wOff + k] * xv; }
    }
  }

  // the block's channels past the group's last (when CoutG is not a multiple of CO) are not stored
  for (var c = 0u; c < min(CO, p.CoutG - oc0); c++) {
    let o = g * p.CoutG + oc0 + c;
    var bv = 0.0;
    if (p.hasBias != 0u) { bv = Bias[o]; }
    let yRow = (b * p.Cout + o) * p.Tout;
    for (var j = 0u; j < 4u; j++) {
      let t = t0 + 64u * j;
      if (t >= p.Tout) { break; }
      Y[yRow + t] = acc[c][j] + bv;
    }
  }
}
