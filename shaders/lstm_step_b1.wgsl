// One LSTM time step for a single sequence (B = 1, inference: EnCodec's LSTMs), dispatched once per step.
// Same maths and state layout as lstm.wgsl (S, CS rows 0 … T, step t reads row t and writes row t + 1), but
// memory-bound the other way round: one subgroup per J hidden units reads their 4 gate rows of W_hh as stored
// ([4H, H]), lanes striding along k in vec4s (contiguous reads), then subgroupAdd. lstm.wgsl instead computes
// 4 batch items per invocation, 3 of them wasted when B = 1 (2.5× slower there on lavapipe).
// On llvmpipe each load instruction costs the same whatever its width, so h_{t−1} is read as one vec4 (S bound
// as vec4s, H a multiple of 4) and shared by the J units' 4·J weight loads: 1 + 4·J loads per 16·J FMAs.

enable subgroups;

const J = 2u;

struct P { t: u32, H: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> XP: array<f32>;             // [T, 4H]: x·W_ihᵀ + b_ih + b_hh
@group(0) @binding(2) var<storage, read> W: array<vec4<f32>>;        // W_hh [4H, H]
@group(0) @binding(3) var<storage, read_write> S: array<vec4<f32>>;  // [T + 1, H]: h0, h_1 … h_T
@group(0) @binding(4) var<storage, read_write> CS: array<f32>;       // [T + 1, H]: c0, c_1 … c_T

#include "lib/lstm_cell.wgsl"

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let j0 = ((gid.x + gid.y * nwg.x * 64u) / sgs) * J;
  let H = p.H;
  let H4 = H / 4u;
  // the last subgroups may run past H: clamped loads, no store
  var rows: array<u32, J>;
  for (var u = 0u; u < J; u++) { rows[u] = min(j0 + u, H - 1u) * H4; }
  var a: array<vec4<f32>, J>;
  for (var k4 = lane; k4 < H4; k4 += sgs) {
    let h = S[p.t * H4 + k4];
    for (var u = 0u; u < J; u++) {
      let w = rows[u] + k4;
      a[u] += vec4<f32>(dot(W[w], h), dot(W[w + H * H4], h), dot(W[w + 2u * H * H4], h), dot(W[w + 3u * H * H4], h));
    }
  }
  for (var u = 0u; u < J; u++) {
    let s = vec4<f32>(subgroupAdd(a[u].x), subgroupAdd(a[u].y), subgroupAdd(a[u].z), subgroupAdd(a[u].w));
    let j = j0 + u;
    if (lane == 0u && j < H) {
      let xo = p.t * 4u * H + j;
      let i = sigmoid_(XP[xo] + s.x);
      let f = sigmoid_(XP[xo + H] + s.y);
      let g = tanh_(XP[xo + 2u * H] + s.z);
      let o = sigmoid_(XP[xo + 3u * H] + s.w);
      let c = f * CS[p.t * H + j] + i * g;
      CS[(p.t + 1u) * H + j] = c;
      let n = (p.t + 1u) * H + j;
      S[n / 4u][n % 4u] = o * tanh_(c);
    }
  }
}
