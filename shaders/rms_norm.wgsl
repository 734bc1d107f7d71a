// RMSNorm over the last axis as T5's T5LayerNorm: y = x·rstd·w, rstd = 1/sqrt(mean(x²) + eps) — no mean
// subtraction, no bias. One workgroup of 64 per row. Saves rstd per row for the backward.

struct P { rows: u32, C: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read_write> Rstd: array<f32>;

#include "lib/row_reduce.wgsl"
#include "lib/row_kernel.wgsl"

fn row_main(row: u32, base: u32, C: u32, t: u32) {
  var q = 0.0;
  for (var c = t; c < C; c += WG) { let x = X[base + c]; q += x * x; }
  let rstd = inverseSqrt(wg_sum(q, t) / f32(C) + p.eps);
  for (var c = t; c < C; c += WG) { Y[base + c] = X[base + c] * rstd * W[c]; }
  if (t == 0u) { Rstd[row] = rstd; }
}
