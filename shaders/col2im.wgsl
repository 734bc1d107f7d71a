// col2im for conv_transpose2d (src/kernels/conv2d.ts), as a gather (no atomics): the matmul has made
// cols [B, Cout·kh·kw, H·W] = weightᵀ·x, each input position's contribution to every kernel tap; each output
// y[b, co, ho, wo] = bias[co] + Σ cols[b, (co·kh + i)·kw + j, hi·W + wi] over the taps with ho = hi·sh + i and
// wo = wi·sw + j inside the input. Output size (H − 1)·sh + kh by (W − 1)·sw + kw (no padding: callers crop).
// flags: bit 0 has bias (else bound to Cols and never read).

struct P { n: u32, Cout: u32, H: u32, W: u32, kh: u32, kw: u32, sh: u32, sw: u32, Ho: u32, Wo: u32, flags: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Cols: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 256u;
  if (idx >= p.n) { return; }
  let wo = idx % p.Wo;
  let ho = (idx / p.Wo) % p.Ho;
  let bco = idx / (p.Wo * p.Ho); // b·Cout + co
  var s = 0.0;
  if ((p.flags & 1u) != 0u) { s = Bias[bco % p.Cout]; }
  let npos = p.H * p.W;
  // taps i ≡ ho (mod sh) with 0 ≤ hi = (ho − i)/sh < H
  for (var i = ho % p.sh; i < p.kh && i <= ho; i += p.sh) {
    let hi = (ho - i) / p.sh;
    if (hi >= p.H) { continue; }
    for (var j = wo % p.sw; j < p.kw && j <= wo; j += p.sw) {
      let wi = (wo - j) / p.sw;
      if (wi >= p.W) { continue; }
      s += Cols[((bco * p.kh + i) * p.kw + j) * npos + hi * p.W + wi];
    }
  }
  Y[idx] = s;
}
