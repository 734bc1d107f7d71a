// Embedding lookup, summed over stacked tables (src/kernels/embedding.ts, and packed.ts for packed tables):
//   out[b, t, d] = Σ_k tables[k, ids[b, k, t], d]
// (MusicGen's input is the sum of its K codebook embeddings; a single table is K = 1.) Ids outside 0…V−1
// contribute zeros and are never read out of bounds. One invocation per output element: neighbours read
// neighbouring d of the same table row. The tables are read through lib/packed.wgsl's decode, so one kernel
// serves every weight format: FORMAT f32 (the default, differentiable tables), f16, q8 or q4.

struct P { n: u32, K: u32, V: u32, T: u32, D: u32, scaleBase: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Tables: array<u32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read> Ids: array<i32>;
@group(0) @binding(4) var<storage, read_write> Out: array<f32>;

#include "lib/packed.wgsl"

// element d of table row `row` (k·V + id), scaled
fn table(row: u32, d: u32) -> f32 {
  let e = row * p.D + d;
  return weight1(Tables[e / PER], e % PER) * row_scale(row) * load_scale(e / (4u * PER));
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let d = i % p.D;
  let bt = i / p.D;
  let b = bt / p.T;
  let t = bt % p.T;
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    let id = Ids[(b * p.K + k) * p.T + t];
    if (id >= 0 && u32(id) < p.V) {
      acc += table(k * p.V + u32(id), d);
    }
  }
  Out[i] = acc;
}
