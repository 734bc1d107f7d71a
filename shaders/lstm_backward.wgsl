// One step of backpropagation through time for a PyTorch LSTM layer (see lstm.wgsl), dispatched for
// t = T − 1 down to 0. With the activated gates i, f, g, o and the cell states saved by the forward:
//   dh = DY[t + 1] + dA[t + 1]·Whh      (the recurrent part is absent at t = T − 1)
//   dc = DC + dh·o·(1 − tanh²c_t)       (DC carries f_{t+1}·dc_{t+1}, or dc_T from the caller)
//   dA[t] = (dc·g·i(1−i), dc·c_{t−1}·f(1−f), dc·i·(1−g²), dh·tanh(c_t)·o(1−o)) at gate·H + j
//   DC ← dc·f                            (after t = 0 it is dc_0)
// dA are the gradients of the pre-activations; the weight, bias and input gradients are matmuls of them after.
// DY is the gradient of the forward's state buffer (row t + 1 is h_t); CS row t + 1 is c_t, row 0 is c0.
//
// Each invocation owns hidden unit j for 4 batch items; Whh [4H, H] is read down column j, so neighbouring
// invocations read neighbouring weights. dA[t + 1] is the same for the whole workgroup.

struct P { t: u32, T: u32, B: u32, H: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> W: array<f32>;  // Whh [4H, H]
@group(0) @binding(2) var<storage, read> DY: array<f32>; // [≥ T + 1, B, H]
@group(0) @binding(3) var<storage, read> G: array<f32>;  // [T, B, 4H]
@group(0) @binding(4) var<storage, read> CS: array<f32>; // [T + 1, B, H]
@group(0) @binding(5) var<storage, read_write> DA: array<f32>; // [T, B, 4H]
@group(0) @binding(6) var<storage, read_write> DC: array<f32>; // [B, H]

#include "lib/lstm_cell.wgsl"
#include "lib/lstm_grid.wgsl"

fn lstm_main(j: u32, b0: u32) {
  let H = p.H;
  let H4 = 4u * H;
  let t = p.t;

  var rec = vec4<f32>(0.0);
  if (t + 1u < p.T) {
    var rows: array<u32, 4>;
    for (var c = 0u; c < 4u; c++) { rows[c] = ((t + 1u) * p.B + min(b0 + c, p.B - 1u)) * H4; }
    for (var r = 0u; r < H4; r++) {
      let av = vec4<f32>(DA[rows[0] + r], DA[rows[1] + r], DA[rows[2] + r], DA[rows[3] + r]);
      rec += W[r * H + j] * av;
    }
  }

  for (var c = 0u; c < 4u; c++) {
    let b = b0 + c;
    if (b >= p.B) { break; }
    let go = (t * p.B + b) * H4 + j;
    let i = G[go];
    let f = G[go + H];
    let g = G[go + 2u * H];
    let o = G[go + 3u * H];
    let s = (t * p.B + b) * H + j; // row t: c_{t−1}; row t + 1: c_t and h_t
    let cp = CS[s];
    let tc = tanh_(CS[s + p.B * H]);
    let dh = DY[s + p.B * H] + rec[c];
    let dc = DC[b * H + j] + dh * o * (1.0 - tc * tc);
    DA[go] = dc * g * i * (1.0 - i);
    DA[go + H] = dc * cp * f * (1.0 - f);
    DA[go + 2u * H] = dc * i * (1.0 - g * g);
    DA[go + 3u * H] = dh * tc * o * (1.0 - o);
    DC[b * H + j] = dc * f;
  }
}
