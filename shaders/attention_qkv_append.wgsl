// Self-attention's fused q/k/v for decoding (src/kernels/attention.ts, KVCache.appendQKV): reads qkv
// [B, Tnew, 3·H·D] (q, k and v side by side, what the FusedLinear of model/linear.ts computes), writes q as heads
// [B, H, Tnew, D] and appends k and v to the caches [B, H, maxT, D] at positions offset … offset + Tnew − 1.
// One kernel where the split would take three narrows (and three head permutes when Tnew > 1) plus the append;
// a decode step has one per layer. One invocation per element of q; neighbours read and write neighbouring
// addresses. The cache's element type KV is f32, or f16 where the adapter has shader-f16 (the wrapper rewrites the
// alias line and enables f16).

alias KV = f32;

struct P { n: u32, H: u32, Tnew: u32, maxT: u32, offset: u32, D: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> QKV: array<f32>;
@group(0) @binding(2) var<storage, read_write> Q: array<f32>;
@group(0) @binding(3) var<storage, read_write> Kc: array<KV>;
@group(0) @binding(4) var<storage, read_write> Vc: array<KV>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let d = i % p.D;
  let t = (i / p.D) % p.Tnew;
  let bh = i / (p.D * p.Tnew);
  let h = bh % p.H;
  let b = bh / p.H;
  let HD = p.H * p.D;
  let src = (b * p.Tnew + t) * 3u * HD + h * p.D + d;
  Q[i] = QKV[src];
  let dst = (bh * p.maxT + p.offset + t) * p.D + d;
  Kc[dst] = KV(QKV[src + HD]);
  Vc[dst] = KV(QKV[src + 2u * HD]);
}
