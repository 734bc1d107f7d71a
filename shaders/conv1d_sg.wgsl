// 1-D convolution (PyTorch Conv1d), conv1d.wgsl's maths and uniforms, laid out for llvmpipe as matmul_sg.wgsl is:
//   Y[b, o, t] = bias[o] + Σ_{i in o's group, k} W[o, i − g·CinG, k] · X[b, i, t·stride − padL + k·dil]
// X [B, Cin, T], W [Cout, CinG, K] as PyTorch stores it, Y [B, Cout, Tout]; positions outside [0, T) read 0.
//
// On llvmpipe a storage load costs ~10 FMAs whatever it reads and a subgroup shuffle about one, so loads are
// what to save. A workgroup computes 16 output channels of one group × 64·CN steps; each invocation owns CN
// steps 64 apart (neighbouring lanes, neighbouring samples). Per (i, k), lane l loads the weight of channels
// oc0 + (l mod 8) and oc0 + 8 + (l mod 8) (2 loads) and its CN input samples (CN loads); the 16 weights reach
// every lane by subgroupShuffle: 2 + CN loads feed 16·CN FMAs (conv1d.wgsl: 4 + CO for 4·CO). Needs
// subgroups of ≥ 8 lanes. Grid: x ⌈Tout / (64·CN)⌉, y = groups × ⌈CoutG / 16⌉, z batch.

enable subgroups;

const CN = 4u;

#include "lib/conv1d_io.wgsl"

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
  let g = wg.y / p.coBlocks;
  let oc0 = (wg.y % p.coBlocks) * 16u; // first output channel of the block, within the group
  let b = wg.z;
  // the weight rows this lane loads for the others (clamped to the group: extra channels are not stored)
  let oc = min(vec2<u32>(oc0, oc0 + 8u) + (lane & 7u), vec2<u32>(p.CoutG - 1u));
  let wRow = (g * p.CoutG + oc) * p.CinG * p.K;
  // input position of each owned step at k = 0 (steps past Tout compute on clamped loads, never stored)
  var pos: array<i32, CN>;
  for (var c = 0u; c < CN; c++) {
    pos[c] = i32((wg.x * 64u * CN + 64u * c + lid.x) * p.stride) - p.padL;
  }
  let T = i32(p.T);
  let xBatch = (b * p.Cin + g * p.CinG) * p.T;

  var acc: array<array<f32, 16>, CN>;
  for (var i = 0u; i < p.CinG; i++) {
    let xRow = xBatch + i * p.T;
    let wOff = i * p.K;
    for (var k = 0u; k < p.K; k++) {
      let wv = vec2<f32>(W[wRow.x + wOff + k], W[wRow.y + wOff + k]);
      let kd = i32(k * p.dil);
      var xv: array<f32, CN>;
      for (var c = 0u; c < CN; c++) {
        let s = pos[c] + kd;
        xv[c] = select(0.0, X[xRow + u32(clamp(s, 0, T - 1))], s >= 0 && s < T);
      }
      for (var r = 0u; r < 8u; r++) {
        let w = subgroupShuffle(wv, r);
        for (var c = 0u; c < CN; c++) {
          acc[c][r] = fma(w.x, xv[c], acc[c][r]);
          acc[c][r + 8u] = fma(w.y, xv[c], acc[c][r + 8u]);
        }
      }
    }
  }

  let rows = min(16u, p.CoutG - oc0);
  for (var c = 0u; c < CN; c++) {
    let t = wg.x * 64u * CN + 64u * c + lid.x;
    if (t >= p.Tout) { break; }
    for (var r = 0u; r < rows; r++) {
      let o = g * p.CoutG + oc0 + r;
      var bv = 0.0;
      if (p.hasBias != 0u) { bv = Bias[o]; }
      Y[(b * p.Cout + o) * p.Tout + t] = acc[c][r] + bv;
    }
  }
}
