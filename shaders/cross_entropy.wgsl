// Cross-entropy, step 1 of 2: per row of logits [N, V] (one workgroup of 64 per row) the log-sum-exp
// lse = m + log Σ exp(x − m) (max-subtracted) and the row's loss lse − x[label]. A row counts when its label
// is not ignoreIndex and lies in [0, V); other rows contribute 0 and are not counted.
// Stat[2r] = loss (0 if not counted), Stat[2r + 1] = 1 or 0; Lse[r] is saved for the backward.

struct P { rows: u32, V: u32, ignoreIndex: i32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Labels: array<i32>;
@group(0) @binding(3) var<storage, read_write> Stat: array<f32>;
@group(0) @binding(4) var<storage, read_write> Lse: array<f32>;

#include "lib/row_reduce.wgsl"

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let V = p.V;
  let base = row * V;
  var m = -F32_MAX;
  for (var c = t; c < V; c += WG) { m = max(m, X[base + c]); }
  m = wg_max(m, t);
  var s = 0.0;
  for (var c = t; c < V; c += WG) { s += exp(X[base + c] - m); }
  s = wg_sum(s, t);
  if (t == 0u) {
    let lse = m + log(s);
    let label = Labels[row];
    let valid = label != p.ignoreIndex && label >= 0 && label < i32(V);
    let x = X[base + u32(clamp(label, 0, i32(V) - 1))];
    Stat[2u * row] = select(0.0, lse - x, valid);
    Stat[2u * row + 1u] = select(0.0, 1.0, valid);
    Lse[row] = lse;
  }
}
