// LayerNorm over the last axis (PyTorch nn.LayerNorm): y = (x − mean)·rstd·w + b, rstd = 1/sqrt(var + eps),
// var biased. One workgroup of 64 per row; the row is read three times (mean, then variance about the mean —
// two passes, as PyTorch, for accuracy — then the output). Saves mean and rstd per row for the backward.
// flags: bit 0 has weight, bit 1 has bias (absent ones are bound to X and never read).

struct P { rows: u32, C: u32, eps: f32, flags: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read> B: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
@group(0) @binding(5) var<storage, read_write> Mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> Rstd: array<f32>;

#include "lib/row_reduce.wgsl"
#include "lib/row_kernel.wgsl"

fn row_main(row: u32, base: u32, C: u32, t: u32) {
  var s = 0.0;
  for (var c = t; c < C; c += WG) { s += X[base + c]; }
  let mean = wg_sum(s, t) / f32(C);
  var q = 0.0;
  for (var c = t; c < C; c += WG) { let d = X[base + c] - mean; q += d * d; }
  let rstd = inverseSqrt(wg_sum(q, t) / f32(C) + p.eps);
  let hasW = (p.flags & 1u) != 0u;
  let hasB = (p.flags & 2u) != 0u;
  for (var c = t; c < C; c += WG) {
    var y = (X[base + c] - mean) * rstd;
    if (hasW) { y *= W[c]; }
    if (hasB) { y += B[c]; }
    Y[base + c] = y;
  }
  if (t == 0u) {
    Mean[row] = mean;
    Rstd[row] = rstd;
  }
}
