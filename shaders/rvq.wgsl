// EnCodec residual vector quantiser, encode (src/kernels/rvq.ts), as transformers'
// EncodecResidualVectorQuantizer.encode: for each stage k < nQ, the codebook entry of the residual r with
//   dist_v = −(|r|² − 2·r·e_v + |e_v|²)   maximal (the first on ties, like torch's max),
// then r −= e_code. x is [B, D, T] (the encoder's output layout); codes are [B, nQ, T].
// One invocation per frame (b, t), its residual in registers; neighbours are neighbouring t, so the reads of
// x are contiguous and the codebook reads are shared.

const D: u32 = 128u; // codebook dim: the wrapper rewrites this line per size

struct P { B: u32, T: u32, V: u32, nQ: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Codebooks: array<f32>;
@group(0) @binding(3) var<storage, read_write> Codes: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = gid.x + gid.y * nwg.x * 64u;
  if (n >= p.B * p.T) { return; }
  let b = n / p.T;
  let t = n % p.T;
  var r: array<f32, D>;
  for (var d = 0u; d < D; d++) { r[d] = X[(b * D + d) * p.T + t]; }
  for (var k = 0u; k < p.nQ; k++) {
    var x2 = 0.0;
    for (var d = 0u; d < D; d++) { x2 += r[d] * r[d]; }
    var best = 0u;
    var bestDist = 0.0;
    for (var v = 0u; v < p.V; v++) {
      let e = (k * p.V + v) * D;
      var xe = 0.0;
      var e2 = 0.0;
      for (var d = 0u; d < D; d++) {
        let c = Codebooks[e + d];
        xe += r[d] * c;
        e2 += c * c;
      }
      let dist = -((x2 - 2.0 * xe) + e2);
      if (v == 0u || dist > bestDist) {
        best = v;
        bestDist = dist;
      }
    }
    Codes[(b * p.nQ + k) * p.T + t] = i32(best);
    let e = (k * p.V + best) * D;
    for (var d = 0u; d < D; d++) { r[d] -= Codebooks[e + d]; }
  }
}
