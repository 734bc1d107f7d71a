// Attention backward, query side (src/kernels/attention.ts). One invocation per query row i; the probabilities
// are recomputed from the forward's log-sum-exp L_i (flash-attention style), nothing Tq×Tk is kept:
//   P_ij  = exp(s_ij − L_i)            over the allowed keys (same rules as attention.wgsl)
//   Δ_i   = dO_i · O_i                 (= Σ_j P_ij dP_ij, from attention_bwd_delta.wgsl)
//   dS_ij = P_ij (dO_i · v_j − Δ_i)
//   dQ_i  = scale · Σ_j dS_ij k_j
// With writeDS, dS (the bias gradient, [B, H, Tq, Tk]) is written too, zeros at disallowed keys.
// L, Δ and the key mask come packed in one buffer (Aux: u32 words, L and Δ as f32 bits), so the kernel binds 8
// storage buffers, the spec's default limit.

const D: u32 = 64u; // head dim: the wrapper rewrites this line per head size

struct P {
  rows: u32, H: u32, Tq: u32, Tk: u32,
  kvT: u32, causal: u32, hasMask: u32, maskStride: u32,
  hasBias: u32, biasBatchStride: u32, writeDS: u32, scale: f32,
  deltaBase: u32, maskBase: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> dO: array<f32>;
@group(0) @binding(5) var<storage, read> Aux: array<u32>;  // L [rows], Δ at deltaBase, the key mask at maskBase
@group(0) @binding(6) var<storage, read> Bias: array<f32>;
@group(0) @binding(7) var<storage, read_write> dQ: array<f32>;
@group(0) @binding(8) var<storage, read_write> dS: array<f32>;

fn mask_word(i: u32) -> u32 { return Aux[p.maskBase + i]; }
#include "lib/attention_keys.wgsl"

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = gid.x + gid.y * nwg.x * 64u;
  if (row >= p.rows) { return; }
  let bh = row / p.Tq;
  let i = row % p.Tq;
  let b = bh / p.H;
  let h = bh % p.H;
  let jEnd = key_end(i);

  var q: array<f32, D>;
  var g: array<f32, D>;
  var dq: array<f32, D>;
  for (var d = 0u; d < D; d++) {
    q[d] = Q[row * D + d];
    g[d] = dO[row * D + d];
    dq[d] = 0.0;
  }
  let delta = bitcast<f32>(Aux[p.deltaBase + row]);
  let L = bitcast<f32>(Aux[row]);
  let kvBase = bh * p.kvT * D;
  let biasRow = b * p.biasBatchStride + (h * p.Tq + i) * p.Tk;
  let dsRow = row * p.Tk;

  // keys in blocks of 4 (as in attention.wgsl); invalid lanes (past jEnd, masked) get P = 0, so dS = 0 there
  for (var j = 0u; j < jEnd; j += 4u) {
    let jj = vec4<u32>(j, j + 1u, j + 2u, j + 3u);
    let jc = min(jj, vec4<u32>(jEnd - 1u));
    let valid = keys_valid(jj, jc, jEnd, b);
    let kb = vec4<u32>(kvBase) + jc * D;
    var dots = vec4<f32>(0.0);
    var dps = vec4<f32>(0.0);
    for (var d = 0u; d < D; d++) {
      dots += q[d] * vec4<f32>(K[kb.x + d], K[kb.y + d], K[kb.z + d], K[kb.w + d]);
      dps += g[d] * vec4<f32>(V[kb.x + d], V[kb.y + d], V[kb.z + d], V[kb.w + d]);
    }
    let sc = block_scores(dots, biasRow, jc);
    let pr = select(vec4<f32>(0.0), exp(sc - vec4<f32>(L)), valid);
    let ds = pr * (dps - vec4<f32>(delta));
    for (var d = 0u; d < D; d++) {
      dq[d] += dot(ds, vec4<f32>(K[kb.x + d], K[kb.y + d], K[kb.z + d], K[kb.w + d]));
    }
    if (p.writeDS != 0u) {
      for (var u = 0u; u < 4u; u++) {
        if (jj[u] < jEnd) { dS[dsRow + jj[u]] = ds[u]; }
      }
    }
  }
  if (p.writeDS != 0u) {
    for (var j = jEnd; j < p.Tk; j++) { dS[dsRow + j] = 0.0; }
  }
  for (var d = 0u; d < D; d++) { dQ[row * D + d] = dq[d] * p.scale; }
}
