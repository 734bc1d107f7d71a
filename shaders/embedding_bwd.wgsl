// Embedding backward (src/kernels/embedding.ts): the table gradient
//   dTables[k, v, d] = Σ_{b, t : ids[b, k, t] = v} dOut[b, t, d]
// as a deterministic scatter-add without float atomics: a counting sort of the positions by table row
// r = k·V + v, then each gradient element sums its row's positions in ascending (b, t) order. Four dispatches
// of this one kernel, chosen by `mode` (one pipeline, one binding layout):
//   0 count:      one invocation per row r: Counts[r] = #positions with that row
//   1 scan:       one workgroup: Counts becomes the exclusive prefix sum (row r's positions are
//                 List[Counts[r] … Counts[r + 1]]), Counts[R] = the total
//   2 fill:       one invocation per row r: List[Counts[r] + c] = b·T + t for its c-th position
//   3 accumulate: one invocation per (r, d): dTables[r, d] = Σ dOut[List[·], d]
// Out-of-range ids belong to no row: they get no gradient. The compares cost R·B·T (R = K·V) and the adds
// B·K·T·D, instead of R·B·T·D for every gradient element checking every position.

struct P { mode: u32, B: u32, K: u32, T: u32, V: u32, D: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Ids: array<i32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
@group(0) @binding(3) var<storage, read_write> Counts: array<u32>;
@group(0) @binding(4) var<storage, read_write> List: array<u32>;
@group(0) @binding(5) var<storage, read_write> GT: array<f32>;

const SCAN_WG: u32 = 64u;
var<workgroup> partial: array<u32, SCAN_WG>;

fn scan(t: u32) {
  let R = p.K * p.V;
  let per = (R + SCAN_WG - 1u) / SCAN_WG;
  let r0 = min(t * per, R);
  let r1 = min(r0 + per, R);
  var sum = 0u;
  for (var r = r0; r < r1; r++) { sum += Counts[r]; }
  partial[t] = sum;
  workgroupBarrier();
  if (t == 0u) {
    var run = 0u;
    for (var s = 0u; s < SCAN_WG; s++) {
      let c = partial[s];
      partial[s] = run;
      run += c;
    }
    Counts[R] = run;
  }
  workgroupBarrier();
  var run = partial[t];
  for (var r = r0; r < r1; r++) {
    let c = Counts[r];
    Counts[r] = run;
    run += c;
  }
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  // p.mode is uniform, so the barriers in scan() are in uniform control flow
  if (p.mode == 1u) {
    scan(lid);
    return;
  }
  let i = gid.x + gid.y * nwg.x * 64u;
  let R = p.K * p.V;
  if (p.mode == 3u) {
    if (i >= R * p.D) { return; }
    let r = i / p.D;
    let d = i % p.D;
    var acc = 0.0;
    for (var c = Counts[r]; c < Counts[r + 1u]; c++) { acc += G[List[c] * p.D + d]; }
    GT[i] = acc;
    return;
  }
  // modes 0 (count) and 2 (fill): walk this row's table over all positions in order
  if (i >= R) { return; }
  let k = i / p.V;
  let v = i32(i % p.V);
  var c = 0u;
  var base = 0u;
  if (p.mode == 2u) { base = Counts[i]; }
  for (var b = 0u; b < p.B; b++) {
    let idBase = (b * p.K + k) * p.T;
    for (var t = 0u; t < p.T; t++) {
      if (Ids[idBase + t] == v) {
        if (p.mode == 2u) { List[base + c] = b * p.T + t; }
        c++;
      }
    }
  }
  if (p.mode == 0u) { Counts[i] = c; }
}
