// Attention forward, second pass when the keys were split (src/kernels/attention.ts): merges the nsplit
// partial outputs of each row, each normalised over its own keys with log-sum-exp L_s, into
//   O = Σ_s w_s O_s / Σ_s w_s,  w_s = exp(L_s − max L),  L = max L + log Σ_s w_s.
// Empty splits carry L_s = −BIG (weight 0); a row with no allowed key at all gets zeros and L = BIG.
// One invocation per (row, d): neighbours write neighbouring addresses.

const BIG: f32 = 3.0e38;

struct P { rows: u32, D: u32, nsplit: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Part: array<f32>;
@group(0) @binding(2) var<storage, read> PartLse: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
@group(0) @binding(4) var<storage, read_write> Lse: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = gid.x + gid.y * nwg.x * 64u;
  if (n >= p.rows * p.D) { return; }
  let row = n / p.D;
  let d = n % p.D;
  let base = row * p.nsplit;
  var mx = -BIG;
  for (var s = 0u; s < p.nsplit; s++) { mx = max(mx, PartLse[base + s]); }
  if (mx <= -0.5 * BIG) {
    O[n] = 0.0;
    if (d == 0u) { Lse[row] = BIG; }
    return;
  }
  var wsum = 0.0;
  var acc = 0.0;
  for (var s = 0u; s < p.nsplit; s++) {
    let w = exp(PartLse[base + s] - mx);
    wsum += w;
    acc += w * Part[(base + s) * p.D + d];
  }
  O[n] = acc / wsum;
  if (d == 0u) { Lse[row] = mx + log(wsum); }
}
