// Backward of softmax / log_softmax over the last axis, one workgroup of 64 per row, from the saved output y:
// softmax: dx = y·(dy − Σ dy·y); log_softmax: dx = dy − exp(y)·Σ dy.

struct P { rows: u32, C: u32, isLog: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;

#include "lib/row_reduce.wgsl"
#include "lib/row_kernel.wgsl"

fn row_main(row: u32, base: u32, C: u32, t: u32) {
  let isLog = p.isLog != 0u;
  var s = 0.0;
  if (isLog) {
    for (var c = t; c < C; c += WG) { s += DY[base + c]; }
  } else {
    for (var c = t; c < C; c += WG) { s += DY[base + c] * Y[base + c]; }
  }
  s = wg_sum(s, t);
  if (isLog) {
    for (var c = t; c < C; c += WG) { DX[base + c] = DY[base + c] - exp(Y[base + c]) * s; }
  } else {
    for (var c = t; c < C; c += WG) { let y = Y[base + c]; DX[base + c] = y * (DY[base + c] - s); }
  }
}
