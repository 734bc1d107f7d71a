// Weight and bias gradients of LayerNorm / RMSNorm: column sums over the rows, in two steps so that tall inputs
// still fill the device: each invocation owns one column of one chunk of rows (neighbouring invocations read
// neighbouring columns) and writes partial sums PW, PB [chunks, C]; the same kernel with mode 2 then adds the
// chunks up. No float atomics in WGSL, hence the two steps.
// mode 0 LayerNorm: PW += dy·(x − mean)·rstd, PB += dy; mode 1 RMSNorm: PW += dy·x·rstd, PB += dy;
// mode 2 plain: PW += X, PB += DY (Mean and Rstd are then bound to X and not read).

struct P { rows: u32, C: u32, chunk: u32, mode: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read> Mean: array<f32>;
@group(0) @binding(4) var<storage, read> Rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> PW: array<f32>;
@group(0) @binding(6) var<storage, read_write> PB: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let c = gid.x;
  let k = wid.y;
  let C = p.C;
  if (c >= C) { return; }
  let r0 = k * p.chunk;
  let r1 = min(r0 + p.chunk, p.rows);
  var w = 0.0;
  var b = 0.0;
  for (var r = r0; r < r1; r++) {
    let i = r * C + c;
    let dy = DY[i];
    switch p.mode {
      case 0u: { w += dy * (X[i] - Mean[r]) * Rstd[r]; }
      case 1u: { w += dy * X[i] * Rstd[r]; }
      default: { w += X[i]; }
    }
    b += dy;
  }
  PW[k * C + c] = w;
  PB[k * C + c] = b;
}
