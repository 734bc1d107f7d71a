// KV cache append (src/kernels/attention.ts, KVCache.append): writes new keys and values [B, H, Tnew, D] into
// the preallocated caches [B, H, maxT, D] at positions offset … offset + Tnew − 1. No readback, no copy of
// what the cache already holds. One invocation per new element; neighbours write neighbouring addresses.
// The cache's element type KV is f32, or f16 where the adapter has shader-f16 (the wrapper rewrites the alias
// line and enables f16): half the cache's memory and half the bytes attention reads per decode step.

alias KV = f32;

struct P { n: u32, Tnew: u32, maxT: u32, offset: u32, D: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Knew: array<f32>;
@group(0) @binding(2) var<storage, read> Vnew: array<f32>;
@group(0) @binding(3) var<storage, read_write> Kc: array<KV>;
@group(0) @binding(4) var<storage, read_write> Vc: array<KV>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let d = i % p.D;
  let t = (i / p.D) % p.Tnew;
  let bh = i / (p.D * p.Tnew);
  let dst = (bh * p.maxT + p.offset + t) * p.D + d;
  Kc[dst] = KV(Knew[i]);
  Vc[dst] = KV(Vnew[i]);
}
