// One radix-2 pass of a Stockham autosort FFT over rows of n complex values (n a power of two), after
// Govindaraju et al., "High performance discrete Fourier transforms on graphics processors" (2008): log2(n)
// passes with Ns = 1, 2, 4, …, n/2, ping-ponging between two buffers, leave the transform in natural order, so
// no bit-reversal pass is needed. Each invocation does one butterfly: a = X[j], b = X[j + n/2] times the
// twiddle e^(∓2πi·k/(2Ns)), k = j mod Ns, written to positions (j/Ns)·2Ns + k and that + Ns. The twiddles
// come from a table Tw[t] = e^(−2πi·t/n) computed in float64 on the CPU (sin/cos of large f32 angles would
// cost accuracy); `conj` = 1 uses their conjugates (the inverse transform, unscaled).

struct P { n_bfly: u32, n: u32, Ns: u32, conj: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> Tw: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> Y: array<vec2<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n_bfly) { return; }
  let half = p.n / 2u;
  let row = i / half;
  let j = i % half;
  let base = row * p.n;
  let k = j % p.Ns;
  var w = Tw[k * (half / p.Ns)];
  if (p.conj != 0u) { w.y = -w.y; }
  let a = X[base + j];
  let x = X[base + j + half];
  let b = vec2<f32>(x.x * w.x - x.y * w.y, x.x * w.y + x.y * w.x);
  let d = (j / p.Ns) * 2u * p.Ns + k;
  Y[base + d] = a + b;
  Y[base + d + p.Ns] = a - b;
}
