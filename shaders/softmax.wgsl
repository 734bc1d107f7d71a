// softmax / log_softmax over the last axis, one workgroup of 64 per row, max-subtracted so that large logits
// do not overflow exp: y = exp(x − m)/s or y = x − m − log(s), m = max(x), s = Σ exp(x − m).
// A row of all −inf gives NaN, as in PyTorch.

struct P { rows: u32, C: u32, isLog: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

#include "lib/row_reduce.wgsl"
#include "lib/row_kernel.wgsl"

fn row_main(row: u32, base: u32, C: u32, t: u32) {
  var m = -F32_MAX;
  for (var c = t; c < C; c += WG) { m = max(m, X[base + c]); }
  m = wg_max(m, t);
  var s = 0.0;
  for (var c = t; c < C; c += WG) { s += exp(X[base + c] - m); }
  s = wg_sum(s, t);
  if (p.isLog != 0u) {
    let lse = m + log(s);
    for (var c = t; c < C; c += WG) { Y[base + c] = X[base + c] - lse; }
  } else {
    let inv = 1.0 / s;
    for (var c = t; c < C; c += WG) { Y[base + c] = exp(X[base + c] - m) * inv; }
  }
}
