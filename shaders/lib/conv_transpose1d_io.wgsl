// The uniforms and bindings of conv_transpose1d.wgsl and conv_transpose1d_sg.wgsl: the wrapper
// (src/kernels/conv.ts) fills the same `struct P` for either kernel (WK: the tap-major weights), so they are
// declared once.

struct P {
  T: u32, Tout: u32, Cin: u32, Cout: u32,
  CinG: u32, CoutG: u32, K: u32, stride: u32,
  dil: u32, pad: u32, coBlocks: u32, hasBias: u32,
  mLo: u32, nM: u32, _p0: u32, _p1: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> WK: array<f32>;
@group(0) @binding(3) var<storage, read> Bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;
