// EnCodec residual vector quantiser, decode (src/kernels/rvq.ts): the sum of the selected codebook entries,
//   out[b, d, t] = Σ_k codebooks[k, codes[b, k, t], d]
// as transformers' EncodecResidualVectorQuantizer.decode, in the decoder's [B, D, T] layout. Codes outside
// 0…V−1 contribute zeros. One invocation per output element; neighbours are neighbouring t.

struct P { n: u32, K: u32, V: u32, T: u32, D: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Codebooks: array<f32>;
@group(0) @binding(2) var<storage, read> Codes: array<i32>;
@group(0) @binding(3) var<storage, read_write> Out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let t = i % p.T;
  let d = (i / p.T) % p.D;
  let b = i / (p.T * p.D);
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) {
    let c = Codes[(b * p.K + k) * p.T + t];
    if (c >= 0 && u32(c) < p.V) { acc += Codebooks[(k * p.V + u32(c)) * p.D + d]; }
  }
  Out[i] = acc;
}
