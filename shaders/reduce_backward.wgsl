// Backward of the last-axis reductions, one invocation per input element (row = i / C):
// mode 0 (sum, mean, sumAll): dx = dy[row]·scale; mode 1 (max): dx = dy[row] at the saved index I[row], else 0.
// For sum/mean, I is bound to DY and not read.

struct P { n: u32, C: u32, mode: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> DY: array<f32>;
@group(0) @binding(2) var<storage, read> I: array<i32>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let row = i / p.C;
  if (p.mode == 0u) {
    DX[i] = DY[row] * p.scale;
  } else {
    DX[i] = select(0.0, DY[row], i32(i - row * p.C) == I[row]);
  }
}
