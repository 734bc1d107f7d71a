// Cross-entropy backward, fused, one invocation per logit: dx = (softmax(x) − onehot(label))·gy/count for
// counted rows (softmax from the saved lse: exp(x − lse)), 0 for ignored ones. Inv[0] = 1/count (0 if none).

struct P { n: u32, V: u32, ignoreIndex: i32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Labels: array<i32>;
@group(0) @binding(3) var<storage, read> Lse: array<f32>;
@group(0) @binding(4) var<storage, read> Inv: array<f32>;
@group(0) @binding(5) var<storage, read> GY: array<f32>;
@group(0) @binding(6) var<storage, read_write> DX: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let row = i / p.V;
  let c = i32(i - row * p.V);
  let label = Labels[row];
  let valid = label != p.ignoreIndex && label >= 0 && label < i32(p.V);
  let g = GY[0] * Inv[0];
  let d = exp(X[i] - Lse[row]) - select(0.0, 1.0, c == label);
  DX[i] = select(0.0, d * g, valid);
}
