// im2col for conv2d (src/kernels/conv2d.ts): x [B, Cin, H, W] → cols [B, Cin·kh·kw, Ho·Wo] with
// cols[b, (ci·kh + i)·kw + j, ho·Wo + wo] = x[b, ci, ho·sh − ph + i, wo·sw − pw + j] (0 outside), so that the
// convolution is one matmul of the weight [Cout, Cin·kh·kw] with it, on the tiled matmul kernel. One output
// element per invocation; neighbouring invocations write neighbouring positions and read neighbouring
// columns of x. Large inputs are done in bands of output rows: Ho rows from output row h0 on.

struct P { n: u32, Cin: u32, H: u32, W: u32, kh: u32, kw: u32, sh: u32, sw: u32, ph: u32, pw: u32, Ho: u32, Wo: u32, h0: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Cols: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 256u;
  if (idx >= p.n) { return; }
  let npos = p.Ho * p.Wo;
  let pos = idx % npos;
  let row = idx / npos; // b·(Cin·kh·kw) + (ci·kh + i)·kw + j
  let j = row % p.kw;
  let i = (row / p.kw) % p.kh;
  let bc = row / (p.kw * p.kh); // b·Cin + ci
  let h = i32((p.h0 + pos / p.Wo) * p.sh + i) - i32(p.ph);
  let w = i32((pos % p.Wo) * p.sw + j) - i32(p.pw);
  var v = 0.0;
  if (h >= 0 && h < i32(p.H) && w >= 0 && w < i32(p.W)) {
    v = X[(bc * p.H + u32(h)) * p.W + u32(w)];
  }
  Cols[idx] = v;
}
