// One time step of a PyTorch LSTM layer (gate order i, f, g, o), dispatched once per step:
//   a = XP[t] + h_{t−1}·Whhᵀ   (XP = x·Wihᵀ + bih + bhh for all steps, one matmul beforehand)
//   i, f, o = σ(a_i, a_f, a_o); g = tanh(a_g); c_t = f·c_{t−1} + i·g; h_t = o·tanh(c_t)
// S and CS hold the states with the initial one in row 0: step t reads row t (written by the previous dispatch)
// and writes row t + 1. The activated gates go to G for the backward.
//
// Each invocation owns hidden unit j for 4 batch items: the 4 gate rows of j against h_{t−1}. Whh is passed
// transposed ([H, 4H]) so neighbouring invocations (j, j + 1) read neighbouring weights; h_{t−1}[b, k] is the
// same for the whole workgroup. Grid: x = ⌈H / 32⌉, y = ⌈B / 4⌉.

struct P { t: u32, B: u32, H: u32, _p: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> XP: array<f32>;       // [T, B, 4H]
@group(0) @binding(2) var<storage, read> WT: array<f32>;       // [H, 4H]
@group(0) @binding(3) var<storage, read_write> S: array<f32>;  // [≥ T + 1, B, H]: h0, h_1 … h_T
@group(0) @binding(4) var<storage, read_write> CS: array<f32>; // [T + 1, B, H]: c0, c_1 … c_T
@group(0) @binding(5) var<storage, read_write> G: array<f32>;  // [T, B, 4H]

#include "lib/lstm_cell.wgsl"
#include "lib/lstm_grid.wgsl"

fn lstm_main(j: u32, b0: u32) {
  let H = p.H;
  let H4 = 4u * H;
  let prev = p.t * p.B * H; // row t of S and CS
  var hRow: array<u32, 4>;
  for (var c = 0u; c < 4u; c++) { hRow[c] = prev + min(b0 + c, p.B - 1u) * H; }

  var ai = vec4<f32>(0.0);
  var af = vec4<f32>(0.0);
  var ag = vec4<f32>(0.0);
  var ao = vec4<f32>(0.0);
  for (var k = 0u; k < H; k++) {
    let hv = vec4<f32>(S[hRow[0] + k], S[hRow[1] + k], S[hRow[2] + k], S[hRow[3] + k]);
    let w = k * H4 + j;
    ai += WT[w] * hv;
    af += WT[w + H] * hv;
    ag += WT[w + 2u * H] * hv;
    ao += WT[w + 3u * H] * hv;
  }

  for (var c = 0u; c < 4u; c++) {
    let b = b0 + c;
    if (b >= p.B) { break; }
    let xo = (p.t * p.B + b) * H4 + j;
    let i = sigmoid_(XP[xo] + ai[c]);
    let f = sigmoid_(XP[xo + H] + af[c]);
    let g = tanh_(XP[xo + 2u * H] + ag[c]);
    let o = sigmoid_(XP[xo + 3u * H] + ao[c]);
    let s = prev + b * H + j;
    let cn = f * CS[s] + i * g;
    CS[s + p.B * H] = cn;
    S[s + p.B * H] = o * tanh_(cn);
    G[xo] = i;
    G[xo + H] = f;
    G[xo + 2u * H] = g;
    G[xo + 3u * H] = o;
  }
}
