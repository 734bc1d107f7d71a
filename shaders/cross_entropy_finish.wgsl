// Cross-entropy, step 2 of 2: one workgroup adds the per-row (loss, counted) pairs of cross_entropy.wgsl and
// writes Loss[0] = Σ loss / count and Inv[0] = 1/count (saved for the backward), both 0 when no row counts —
// never NaN. Everything stays on the GPU.

struct P { rows: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Stat: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> Loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> Inv: array<f32>;

#include "lib/row_reduce_vec2.wgsl"

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) t: u32) {
  var acc = vec2<f32>(0.0);
  for (var r = t; r < p.rows; r += WG) { acc += Stat[r]; }
  let s = wg_sum2(acc, t);
  if (t == 0u) {
    let inv = select(0.0, 1.0 / s.y, s.y > 0.0);
    Loss[0] = s.x * inv;
    Inv[0] = inv;
  }
}
