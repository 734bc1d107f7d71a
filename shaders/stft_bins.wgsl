// STFT output (src/kernels/stft.ts): the transformed frames S [R, frames, n] (complex) → Z [R, 2, bins, frames]
// with bins = n/2 + 1 (the one-sided spectrum), real parts in plane 0 and imaginary in plane 1, times `scale`
// (n^−½ for a normalised STFT). Planes of [bins, frames] are the layout Demucs's complex-as-channels branch
// uses, so its input needs no further permute. One output per invocation.

struct P { count: u32, n: u32, bins: u32, frames: u32, scale: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> S: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> Z: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 256u;
  if (idx >= p.count) { return; }
  let f = idx % p.frames;
  let k = (idx / p.frames) % p.bins;
  let c = (idx / (p.frames * p.bins)) % 2u;
  let r = idx / (2u * p.frames * p.bins);
  let v = S[(r * p.frames + f) * p.n + k];
  Z[idx] = select(v.x, v.y, c == 1u) * p.scale;
}
