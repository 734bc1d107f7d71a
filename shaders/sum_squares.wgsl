// Gradient-norm clipping on the GPU, as torch.nn.utils.clip_grad_norm_ (2-norm), with no readback.
// `partial`: one tensor's sum of squares, split over up to 256 workgroups; workgroup k writes its share to
//   Out[offset + k]. Each tensor of the set gets its own range of the partials buffer.
// `finish`: one workgroup sums all partials (fixed order, so the result is deterministic) and writes
//   norm = √Σ, scale = min(1, maxNorm / (norm + 1e-6)) (NaN stays NaN, as torch.clamp), finite = 1 or 0.

struct P { n: u32, offset: u32, count: u32, maxNorm: f32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> In: array<f32>;
@group(0) @binding(2) var<storage, read_write> Out: array<f32>;
@group(0) @binding(3) var<storage, read_write> OutScale: array<f32>;
@group(0) @binding(4) var<storage, read_write> OutFinite: array<f32>;

const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

// Tree sum of one value per invocation; the result is valid in invocation 0.
fn wg_sum(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (tid < s) { red[tid] = red[tid] + red[tid + s]; }
    workgroupBarrier();
  }
  return red[0];
}

@compute @workgroup_size(256)
fn partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) tid: u32) {
  var acc = 0.0;
  // consecutive invocations read consecutive elements
  for (var i = wid.x * WG + tid; i < p.n; i += nwg.x * WG) {
    let x = In[i];
    acc += x * x;
  }
  let total = wg_sum(acc, tid);
  if (tid == 0u) { Out[p.offset + wid.x] = total; }
}

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) tid: u32) {
  var acc = 0.0;
  for (var i = tid; i < p.count; i += WG) { acc += In[i]; }
  let total = wg_sum(acc, tid);
  if (tid == 0u) {
    let norm = sqrt(total);
    let coef = p.maxNorm / (norm + 1e-6);
    // select, not min: min's result for NaN is implementation-defined, torch.clamp keeps NaN
    Out[0] = norm;
    OutScale[0] = select(coef, 1.0, coef > 1.0);
    // bit test: WGSL may assume floats are finite, so x != x or comparisons with inf are not reliable
    OutFinite[0] = select(0.0, 1.0, (bitcast<u32>(norm) & 0x7f800000u) != 0x7f800000u);
  }
}
