// One LSTM time step for a single sequence (B = 1, inference: EnCodec's LSTMs), dispatched once per step.
// Same maths and state layout as lstm.wgsl (S, CS rows 0 … T, step t reads row t and writes row t + 1), but
// memory-bound the other way round: one subgroup per hidden unit reads its 4 gate rows of W_hh as stored
// ([4H, H]), lanes striding along k in vec4s (contiguous reads), then subgroupAdd. lstm.wgsl instead computes
// 4 batch items per invocation, 3 of them wasted when B = 1 (2.5× slower there on lavapipe).
// One hidden unit per subgroup: h_{t−1} is read as one vec4 (S bound as vec4s, H a multiple of 4) and shared by
// the unit's 4 gate rows, 5 loads per 16 FMAs. Two or more units per subgroup (sharing that h load) measured
// slower on llvmpipe, not faster: J = 2 ~25% more CPU time per step, J = 4 and 8 2–5× more (more loads in
// flight per iteration; llvmpipe turns each lane's load into its own scalar load on this AMD CPU).

enable subgroups;

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
  let j = (gid.x + gid.y * nwg.x * 64u) / sgs;
  let H = p.H;
  let H4 = H / 4u;
  // the last subgroups may run past H: clamped loads, no store
  let row = min(j, H - 1u) * H4;
  let G = H * H4; // one gate's block of rows, in vec4s
  var a = vec4<f32>(0.0);
  for (var k4 = lane; k4 < H4; k4 += sgs) {
    let h = S[p.t * H4 + k4];
    let w = row + k4;
    a += vec4<f32>(dot(W[w], h), dot(W[w + G], h), dot(W[w + 2u * G], h), dot(W[w + 3u * G], h));
  }
  let s = vec4<f32>(subgroupAdd(a.x), subgroupAdd(a.y), subgroupAdd(a.z), subgroupAdd(a.w));
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
