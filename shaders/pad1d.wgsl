// Padding along the last axis of [rows, T] (rows = B·C), as torch.nn.functional.pad with two pads.
// mode: 0 constant (zero is constant 0), 1 reflect (mirror without repeating the edge; needs pad < T),
// 2 replicate (repeat the edge sample).
// `main`: Y[r, t] = X[r, src(t − left)], one output per invocation; neighbouring invocations read neighbouring
// samples. `backward`: the adjoint, X = dY [rows, Tout] → Y = dX [rows, T]; each input sample gathers the
// output positions that copied it (at most three for reflect, a run at each edge for replicate), so no atomics.

struct P { n: u32, T: u32, Tout: u32, left: u32, mode: u32, value: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let t = i % p.Tout;
  let row = i / p.Tout;
  let T = i32(p.T);
  var s = i32(t) - i32(p.left);
  if (p.mode == 0u) {
    if (s < 0 || s >= T) { Y[i] = p.value; return; }
  } else if (p.mode == 1u) {
    if (s < 0) { s = -s; }
    if (s >= T) { s = 2 * (T - 1) - s; }
  } else {
    s = clamp(s, 0, T - 1);
  }
  Y[i] = X[row * p.T + u32(s)];
}

@compute @workgroup_size(256)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let s = i32(i % p.T);
  let row = i / p.T;
  let base = row * p.Tout;
  let T = i32(p.T);
  let L = i32(p.left);
  let To = i32(p.Tout);
  var acc = X[base + u32(s + L)]; // the direct copy
  if (p.mode == 1u) {
    // left mirror: output j = L − s holds input s for 1 ≤ s ≤ L
    if (s >= 1 && s <= L) { acc += X[base + u32(L - s)]; }
    // right mirror: output j = L + 2(T − 1) − s for s ≤ T − 2, while j < Tout
    let j = L + 2 * (T - 1) - s;
    if (s <= T - 2 && j < To) { acc += X[base + u32(j)]; }
  } else if (p.mode == 2u) {
    if (s == 0) { for (var j = 0; j < L; j++) { acc += X[base + u32(j)]; } }
    if (s == T - 1) { for (var j = L + T; j < To; j++) { acc += X[base + u32(j)]; } }
  }
  Y[i] = acc;
}
