// iSTFT input (src/kernels/stft.ts): a one-sided spectrum Z [R, 2, bins, frames] (real and imaginary planes,
// bins = n/2 + 1) → full complex frames F [R, frames, n] by Hermitian symmetry, F[k] = Z[k] for k ≤ n/2 and
// conj(Z[n − k]) above, times `scale`. After the inverse FFT the real part is what a c2r inverse (torch.istft)
// gives: the imaginary parts of the DC and Nyquist bins only reach the discarded imaginary output.

struct P { count: u32, n: u32, bins: u32, frames: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Z: array<f32>;
@group(0) @binding(2) var<storage, read_write> Fr: array<vec2<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 256u;
  if (idx >= p.count) { return; }
  let i = idx % p.n;
  let f = (idx / p.n) % p.frames;
  let r = idx / (p.n * p.frames);
  let upper = i > p.n / 2u;
  let k = select(i, p.n - i, upper);
  let plane = p.bins * p.frames;
  let re = Z[(r * 2u) * plane + k * p.frames + f];
  var im = Z[(r * 2u + 1u) * plane + k * p.frames + f];
  if (upper) { im = -im; }
  Fr[idx] = vec2<f32>(re, im) * p.scale;
}
