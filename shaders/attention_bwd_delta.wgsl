// Attention backward, first pass (src/kernels/attention.ts): Δ_i = dO_i · O_i for every query row (= Σ_j P_ij dP_ij,
// what dS subtracts), written as f32 bits into the packed buffer Aux at deltaBase. Aux carries L, Δ and the key
// mask together so that attention_bwd_dq.wgsl and attention_bwd_dkv.wgsl bind 8 storage buffers, the spec's
// default limit. One invocation per row.

struct P { rows: u32, D: u32, deltaBase: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> O: array<f32>;
@group(0) @binding(2) var<storage, read> dO: array<f32>;
@group(0) @binding(3) var<storage, read_write> Aux: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * 64u;
  if (row >= p.rows) { return; }
  var delta = 0.0;
  for (var d = 0u; d < p.D; d++) { delta += dO[row * p.D + d] * O[row * p.D + d]; }
  Aux[p.deltaBase + row] = bitcast<u32>(delta);
}
