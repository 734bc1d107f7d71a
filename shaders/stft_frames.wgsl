// STFT framing (src/kernels/stft.ts): from a padded signal X [R, Lp], the windowed frames as complex rows
// F[r, f, i] = (X[r, f·hop + i]·win[i], 0) for f < frames, i < n, ready for the FFT passes. One output per
// invocation; neighbours read neighbouring samples.

struct P { count: u32, n: u32, frames: u32, hop: u32, Lp: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Win: array<f32>;
@group(0) @binding(3) var<storage, read_write> Fr: array<vec2<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 256u;
  if (idx >= p.count) { return; }
  let i = idx % p.n;
  let f = (idx / p.n) % p.frames;
  let r = idx / (p.n * p.frames);
  Fr[idx] = vec2<f32>(X[r * p.Lp + f * p.hop + i] * Win[i], 0.0);
}
