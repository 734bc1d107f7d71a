// Attention backward, key/value side (src/kernels/attention.ts). One invocation per key row j of [B, H, kvT]
// (rows j ≥ Tk, beyond the valid keys, and masked keys get zeros); it loops over the queries that see j:
//   P_ij  = exp(s_ij − L_i),  dS_ij = P_ij (dO_i · v_j − Δ_i)   (Δ from attention_bwd_delta.wgsl)
//   dK_j  = scale · Σ_i dS_ij q_i,   dV_j = Σ_i P_ij dO_i
// Each gradient row is owned by one invocation: no atomics, deterministic. Neighbouring invocations read the
// same query row at the same time. L, Δ and the key mask come packed in Aux (see attention_bwd_dq.wgsl): 8
// storage buffers, the spec's default limit.

const D: u32 = 64u; // head dim: the wrapper rewrites this line per head size

struct P {
  keyRows: u32, H: u32, Tq: u32, Tk: u32,
  kvT: u32, causal: u32, hasMask: u32, maskStride: u32,
  hasBias: u32, biasBatchStride: u32, scale: f32,
  deltaBase: u32, maskBase: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> dO: array<f32>;
@group(0) @binding(5) var<storage, read> Aux: array<u32>;  // L [rows], Δ at deltaBase, the key mask at maskBase
@group(0) @binding(6) var<storage, read> Bias: array<f32>;
@group(0) @binding(7) var<storage, read_write> dK: array<f32>;
@group(0) @binding(8) var<storage, read_write> dV: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = gid.x + gid.y * nwg.x * 64u;
  if (n >= p.keyRows) { return; }
  let bh = n / p.kvT;
  let j = n % p.kvT;
  let b = bh / p.H;
  let h = bh % p.H;

  var dk: array<f32, D>;
  var dv: array<f32, D>;
  for (var d = 0u; d < D; d++) { dk[d] = 0.0; dv[d] = 0.0; }
  let live = j < p.Tk && (p.hasMask == 0u || (Aux[p.maskBase + b * p.maskStride + j] & 0x7fffffffu) != 0u);
  if (live) {
    var k: array<f32, D>;
    var v: array<f32, D>;
    for (var d = 0u; d < D; d++) { k[d] = K[n * D + d]; v[d] = V[n * D + d]; }
    // causal: query i sees j when j ≤ i + (Tk − Tq)
    var i0 = 0u;
    if (p.causal != 0u) { i0 = u32(max(i32(j) - i32(p.Tk) + i32(p.Tq), 0)); }
    // queries in blocks of 4: each k[d], v[d], dk[d], dv[d] is touched once per 4 queries
    for (var i = i0; i < p.Tq; i += 4u) {
      let ii = vec4<u32>(i, i + 1u, i + 2u, i + 3u);
      let valid = ii < vec4<u32>(p.Tq);
      let rows = vec4<u32>(bh * p.Tq) + min(ii, vec4<u32>(p.Tq - 1u));
      let rb = rows * D;
      var dots = vec4<f32>(0.0);
      var dps = vec4<f32>(0.0);
      for (var d = 0u; d < D; d++) {
        dots += k[d] * vec4<f32>(Q[rb.x + d], Q[rb.y + d], Q[rb.z + d], Q[rb.w + d]);
        dps += v[d] * vec4<f32>(dO[rb.x + d], dO[rb.y + d], dO[rb.z + d], dO[rb.w + d]);
      }
      var sc = dots * p.scale;
      if (p.hasBias != 0u) {
        let bb = vec4<u32>(b * p.biasBatchStride + h * p.Tq * p.Tk + j) + (rows - vec4<u32>(bh * p.Tq)) * p.Tk;
        sc += vec4<f32>(Bias[bb.x], Bias[bb.y], Bias[bb.z], Bias[bb.w]);
      }
      let L = bitcast<vec4<f32>>(vec4<u32>(Aux[rows.x], Aux[rows.y], Aux[rows.z], Aux[rows.w]));
      let dr = rows + vec4<u32>(p.deltaBase);
      let delta = bitcast<vec4<f32>>(vec4<u32>(Aux[dr.x], Aux[dr.y], Aux[dr.z], Aux[dr.w]));
      let pr = select(vec4<f32>(0.0), exp(sc - L), valid);
      let ds = pr * (dps - delta);
      for (var d = 0u; d < D; d++) {
        dk[d] += dot(ds, vec4<f32>(Q[rb.x + d], Q[rb.y + d], Q[rb.z + d], Q[rb.w + d]));
        dv[d] += dot(pr, vec4<f32>(dO[rb.x + d], dO[rb.y + d], dO[rb.z + d], dO[rb.w + d]));
      }
    }
  }
  for (var d = 0u; d < D; d++) {
    dK[n * D + d] = dk[d] * p.scale;
    dV[n * D + d] = dv[d];
  }
}
