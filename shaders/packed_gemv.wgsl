// The decode gemv on a packed weight (src/kernels/packed.ts `gemvPacked`) where the adapter has subgroups of at
// least 8 lanes: y[r, n] = act(Σ_k x[r, k] · W[n, k] + bias[n]) for R ≤ 8 rows of x (one token per batch row,
// twice with guidance) and W [N, K] in f16, q8 or q4 (FORMAT, lib/packed.wgsl).
//
// A decode step reads every weight once, so the kernel counts loads. On llvmpipe every loaded float costs ~6
// cycles per lane (a storage load is a per-lane gather) while a subgroup shuffle costs about one FMA, and a word
// holds 2–8 packed weights but x is f32. So each lane owns ROWS whole rows of W (no sum across lanes) and x is
// shared: per chunk of 32 values of k, lane l loads only x vec4 l of the chunk for each row of x, and
// `subgroupShuffle` hands the 8 vec4s to every lane. A lane then loads R / (8 · ROWS) floats of x per weight
// instead of R / 4 when every lane read its own x (lanes along k, 4 rows a subgroup): q8's decode gemv ran
// 2.5–3× faster. (f32 weights keep gemv.wgsl's lanes along k: at 4 bytes a weight, 16 lanes' loads from 16
// rows measured slower than the x loads they saved.) Each weight word is decoded once, used by every row of x.
// Needs subgroups of ≥ 8 lanes (lanes 8… load duplicates of lanes 0–7's x and take theirs); the wrapper plans
// one invocation per ROWS rows, whatever the subgroup size.
// Specialised per FORMAT, per row count R and per ROWS.

enable subgroups;

struct P { N: u32, K: u32, hasBias: u32, act: u32, scaleBase: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> S: array<f32>;
@group(0) @binding(4) var<storage, read> Bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> Y: array<f32>;

#include "lib/matmul_finish.wgsl"
#include "lib/packed.wgsl"

const R: u32 = 1u; // rows of x, set per count by the wrapper
const ROWS: u32 = 2u; // rows of W per lane (ROWS_PER_LANE in src/kernels/packed.ts)
const CHUNK = 8u; // x vec4s shared per step: one per lane of the smallest subgroup served
const LOADS = max(1u, CHUNK / PER); // lane loads (4 words) of a row per chunk
const XPER = min(PER, CHUNK); // x vec4s a lane load covers

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32) {
  let n0 = (gid.x + gid.y * nwg.x * 64u) * ROWS;
  let K4 = p.K / 4u;
  let KW = p.K / (4u * PER); // lane loads per row
  // rows past N are clamped for the loads and never stored (no early return: the shuffles need every lane)
  var wrow: array<u32, ROWS>;
  for (var j = 0u; j < ROWS; j++) { wrow[j] = min(n0 + j, p.N - 1u) * KW; }
  // [j][r / 4][r % 4]: row n0 + j of W against row r of x
  var acc: array<mat2x4<f32>, ROWS>;
  for (var c0 = 0u; c0 < K4; c0 += CHUNK) {
    // this lane's share of x: vec4 c0 + lane % 8 of every row (zero past the end of the row)
    let o = c0 + (lane & 7u);
    let keep = select(0.0, 1.0, o < K4);
    let oc = min(o, K4 - 1u);
    var xs: array<vec4<f32>, R>;
    for (var r = 0u; r < R; r++) { xs[r] = X[r * K4 + oc] * keep; }
    for (var q = 0u; q < LOADS; q++) {
      let kb = c0 / XPER + q; // this lane load's index along the row
      if (kb >= KW) { break; } // the last chunk of a row whose loads do not fill it (uniform: every lane alike)
      var wv: array<vec4<u32>, ROWS>;
      for (var j = 0u; j < ROWS; j++) { wv[j] = W[wrow[j] + kb]; }
      // q4 scales each lane load's sums (a group of 32); the other formats add to acc directly
      var part = array<mat2x4<f32>, ROWS>(); // written out: a bare `var` in a loop was not zeroed each pass (Dawn)
      for (var c = 0u; c < XPER; c++) {
        var xv: array<vec4<f32>, R>;
        for (var r = 0u; r < R; r++) {
          let xr: vec4<f32> = xs[r];
          xv[r] = subgroupShuffle(xr, q * XPER + c);
        }
        for (var j = 0u; j < ROWS; j++) {
          let d = weights4(wv[j], c);
          for (var r = 0u; r < R; r++) {
            let v = dot(xv[r], d);
            if (FORMAT == Q4) { part[j][r / 4u][r % 4u] += v; } else { acc[j][r / 4u][r % 4u] += v; }
          }
        }
      }
      if (FORMAT == Q4) { for (var j = 0u; j < ROWS; j++) { acc[j] += part[j] * load_scale(wrow[j] + kb); } }
    }
  }
  for (var j = 0u; j < ROWS; j++) {
    let n = n0 + j;
    if (n >= p.N) { break; }
    for (var r = 0u; r < R; r++) { Y[r * p.N + n] = finish(acc[j][r / 4u][r % 4u] * row_scale(n), n); }
  }
}
