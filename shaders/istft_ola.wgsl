// iSTFT overlap-add (src/kernels/stft.ts), as a gather: output sample j of row r is sample t = j + offset of
// the full overlap-added signal (offset n/2 undoes the centre padding), Σ_f Re(F[r, f, t − f·hop])·win[t − f·hop]
// over the frames that cover t, divided by the window envelope Σ_f win²[t − f·hop] (torch.istft's
// normalisation; 0 where no frame reaches, which torch pads with zeros). One output per invocation.

struct P { count: u32, n: u32, frames: u32, hop: u32, L: u32, offset: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Fr: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> Win: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 256u;
  if (idx >= p.count) { return; }
  let j = idx % p.L;
  let r = idx / p.L;
  let t = j + p.offset;
  // frames f with f·hop ≤ t < f·hop + n
  var f0 = 0u;
  if (t >= p.n) { f0 = (t - p.n) / p.hop + 1u; }
  let f1 = min(t / p.hop + 1u, p.frames);
  var num = 0.0;
  var env = 0.0;
  for (var f = f0; f < f1; f++) {
    let i = t - f * p.hop;
    let w = Win[i];
    num += Fr[(r * p.frames + f) * p.n + i].x * w;
    env += w * w;
  }
  Y[idx] = select(0.0, num / env, env > 1e-11);
}
