// The uniforms and bindings of packed_matmul.wgsl and packed_matmul_sg.wgsl: the wrapper (src/kernels/packed.ts
// `matmulPacked`) fills the same `struct P` for either kernel, so they are declared once. W is the packed matrix's
// words and S the same buffer read as f32 scales (lib/packed.wgsl).

struct P { M: u32, N: u32, K: u32, hasBias: u32, act: u32, scaleBase: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> S: array<f32>;
@group(0) @binding(4) var<storage, read> Bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> Y: array<f32>;
