// The second half of a transposed 1-D convolution done as a matmul (src/kernels/conv.ts, short inputs, groups 1,
// dilation 1): Z = Xᵀ·W gives every input step's contribution to every (output channel, tap), and this folds
// them onto the output (overlap-add, "col2im"):
//   Y[b, o, t] = bias[o] + Σ_{k ≡ t + pad (mod stride), m = (t + pad − k) / stride, 0 ≤ m < T} Z[b, m, o·K + k]
// Z [B, T, Cout·K] (PyTorch's weight [Cin, Cout, K] seen as [Cin, Cout·K]), Y [B, Cout, Tout]. One output per
// invocation, neighbouring invocations at neighbouring t; each sums ⌈K / stride⌉ values at most. Why a matmul
// at all: on llvmpipe the library's register-tiled matmul ran EnCodec's 1024 → 512 upsampling layer (100 input
// steps) ~2.3× faster than conv_transpose1d_sg.wgsl, whose 64·CN-step blocks are mostly idle on short inputs.
// col2im.wgsl (conv_transpose2d's fold) reads its columns [B, Cout·kh·kw, H·W]: that Wᵀ·X orientation of the
// matmul ran this layer ~2.5× slower than Xᵀ·W, hence a fold of [B, T, Cout·K] with the padding trimmed here.

struct P { n: u32, T: u32, Tout: u32, Cout: u32, K: u32, stride: u32, pad: u32, hasBias: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Z: array<f32>;
@group(0) @binding(2) var<storage, read> Bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let t = i % p.Tout;
  let bo = i / p.Tout;
  let o = bo % p.Cout;
  let b = bo / p.Cout;
  let tp = t + p.pad;
  var acc = 0.0;
  if (p.hasBias != 0u) { acc = Bias[o]; }
  let CK = p.Cout * p.K;
  // the taps of this phase in rising order (m = (tp − k) / stride falls)
  for (var k = tp % p.stride; k < p.K; k += p.stride) {
    if (k > tp) { break; }
    let m = (tp - k) / p.stride;
    if (m < p.T) { acc += Z[(b * p.T + m) * CK + o * p.K + k]; }
  }
  Y[i] = acc;
}
