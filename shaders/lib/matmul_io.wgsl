// The uniforms and bindings of matmul.wgsl and matmul_sg.wgsl: the wrapper (src/kernels/matmul.ts) fills the
// same `struct P` for either kernel, so they are declared once.

struct P {
  M: u32, N: u32, K: u32, hasBias: u32,
  sAb: u32, sAm: u32, sAk: u32, act: u32,
  sBb: u32, sBk: u32, sBn: u32, _pad: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> Bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
