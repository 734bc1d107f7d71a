// Backward of softmax / log_softmax over the last axis, one workgroup of 64 per row, from the saved output y:
// softmax: dx = y·(dy − Σ dy·y); log_softmax: dx = dy − exp(y)·Σ dy.

struct P { rows: u32, C: u32, isLog: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Y: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;

#include "lib/row_reduce.wgsl"

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let C = p.C;
  let base = row * C;
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
