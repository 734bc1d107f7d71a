// GLU (torch.nn.functional.glu) along a middle axis: x [outer, 2C, inner] → y [outer, C, inner] with
// y = a·sigmoid(b), a the first C channels and b the last C. One output per invocation. Forward only.

struct P { n: u32, C: u32, inner: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let block = p.C * p.inner;
  let o = i / block;
  let a = X[o * 2u * block + i % block];
  let b = X[o * 2u * block + block + i % block];
  Y[i] = a / (1.0 + exp(-b));
}
