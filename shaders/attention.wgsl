// Scaled dot-product attention, forward (src/kernels/attention.ts). One invocation per (query row, key split):
// it streams its keys once with an online softmax (running max m, running sum l, unnormalised accumulator),
// so nothing of size Tq×Tk is stored. s_ij = scale·(q_i·k_j) + bias_ij over the allowed keys j:
//   causal: j ≤ i + (Tk − Tq)  (queries are the last Tq positions: KV-cache decoding)
//   keyMask[b, j] ≠ 0          (f32 or i32: any bits but the sign bit mean keep)
// nsplit = 1: writes O (normalised) and the row's log-sum-exp L = m + log l for the backward.
// nsplit > 1 (few rows, many keys: decoding): split s handles keys [s·chunk, (s+1)·chunk) and writes its own
// normalised partial output and log-sum-exp; attention_combine.wgsl merges the splits.
// A row (or split) with no allowed key writes zeros and L = BIG (final: exp(s − L) = 0 in the backward) or
// L = −BIG (a partial: weight 0 in the combine).
// K and V are read as [B, H, kvT, D] with only the first Tk rows valid, so a preallocated KV cache is read in
// place. Neighbouring invocations are neighbouring query rows of one head: they read the same key at the
// same time. K and V hold KV: f32, or f16 for an f16 KV cache (the wrapper rewrites the alias line and enables
// f16; scores and sums stay f32).

const D: u32 = 64u; // head dim: the wrapper rewrites this line per head size, so the loops have fixed bounds
const BIG: f32 = 3.0e38;
alias KV = f32;

struct P {
  rows: u32, H: u32, Tq: u32, Tk: u32,
  kvT: u32, nsplit: u32, chunk: u32, causal: u32,
  hasMask: u32, maskStride: u32, hasBias: u32, biasBatchStride: u32,
  scale: f32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<KV>;
@group(0) @binding(3) var<storage, read> V: array<KV>;
@group(0) @binding(4) var<storage, read> Mask: array<u32>;
@group(0) @binding(5) var<storage, read> Bias: array<f32>;
@group(0) @binding(6) var<storage, read_write> O: array<f32>;
@group(0) @binding(7) var<storage, read_write> Lse: array<f32>;

fn mask_word(i: u32) -> u32 { return Mask[i]; }
#include "lib/attention_keys.wgsl"

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = gid.x + gid.y * nwg.x * 64u;
  if (n >= p.rows * p.nsplit) { return; }
  let row = n / p.nsplit;
  let s = n % p.nsplit;
  let bh = row / p.Tq;
  let i = row % p.Tq;
  let b = bh / p.H;
  let h = bh % p.H;

  // keys this invocation may see
  let j0 = s * p.chunk;
  let j1 = min(j0 + p.chunk, key_end(i));

  var q: array<f32, D>;
  for (var d = 0u; d < D; d++) { q[d] = Q[row * D + d]; }
  var acc: array<f32, D>;
  for (var d = 0u; d < D; d++) { acc[d] = 0.0; }
  var m = -BIG;
  var l = 0.0;
  let kvBase = bh * p.kvT * D;
  let biasRow = b * p.biasBatchStride + (h * p.Tq + i) * p.Tk;

  // keys in blocks of 4: each q[d] and acc[d] is touched once per 4 keys, and the running max is updated
  // once per block. Lanes past j1 or masked are invalid: clamped loads, probability 0.
  for (var j = j0; j < j1; j += 4u) {
    let jj = vec4<u32>(j, j + 1u, j + 2u, j + 3u);
    let jc = min(jj, vec4<u32>(j1 - 1u));
    let valid = keys_valid(jj, jc, j1, b);
    if (!any(valid)) { continue; }
    let kb = vec4<u32>(kvBase) + jc * D;
    var dots = vec4<f32>(0.0);
    for (var d = 0u; d < D; d++) {
      dots += q[d] * vec4<f32>(vec4<KV>(K[kb.x + d], K[kb.y + d], K[kb.z + d], K[kb.w + d]));
    }
    let sc = block_scores(dots, biasRow, jc);
    let vmax = select(vec4<f32>(-BIG), sc, valid);
    let bm = max(max(vmax.x, vmax.y), max(vmax.z, vmax.w));
    if (bm > m) {
      // a new maximum: rescale what was accumulated under the old one
      let corr = exp(m - bm);
      l *= corr;
      for (var d = 0u; d < D; d++) { acc[d] *= corr; }
      m = bm;
    }
    let pj = select(vec4<f32>(0.0), exp(sc - vec4<f32>(m)), valid);
    l += pj.x + pj.y + pj.z + pj.w;
    for (var d = 0u; d < D; d++) {
      acc[d] += dot(pj, vec4<f32>(vec4<KV>(V[kb.x + d], V[kb.y + d], V[kb.z + d], V[kb.w + d])));
    }
  }

  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var d = 0u; d < D; d++) { O[n * D + d] = acc[d] * inv; }
  if (l > 0.0) {
    Lse[n] = m + log(l);
  } else {
    Lse[n] = select(BIG, -BIG, p.nsplit > 1u);
  }
}
