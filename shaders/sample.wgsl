// MusicGen's sampler, one workgroup per row of logits [R, V] (V ≤ MAXV): everything stays on the GPU.
//   main:  token = argmax (temperature 0; first index on ties), else a draw from softmax(logits / T) filtered
//          as transformers' TopKLogitsWarper then TopPLogitsWarper, renormalised.
//   probs: the filtered, renormalised probabilities themselves (tests, debugging).
//   guidance: classifier-free guidance, uncond + (cond − uncond)·scale over [cond; uncond] (element-wise).
//   rng:   one Philox-4x32-10 block, to check the generator against its known-answer vectors.
// Filtering never sorts: both thresholds are found by bisection over the bits of a float (order-preserving),
// each step one workgroup reduction, so the result is exact, not approximate:
//   top-k keeps x ≥ x_(K), the K-th largest value (ties at the boundary are all kept, as TopKLogitsWarper's
//     `scores < topk(scores)[..., -1]`; torch.topk itself would keep exactly K).
//   top-p removes a token when the ascending cumulative sum up to it is ≤ 1 − topP (TopPLogitsWarper). That
//     removed set is {p ≤ t} for the largest t with Σ_{p ≤ t} p ≤ 1 − topP, plus, where equal probabilities
//     straddle the boundary, the lowest-index members of that tie group (torch's stable ascending sort puts
//     them first); the most likely token (highest index among equal maxima) is always kept.
// Sampling is by inverse CDF in index order with one uniform from Philox-4x32-10 keyed by the seed, counter
// (row, step): a seed reproduces its tokens exactly, rows get independent streams, no CPU random state.

struct P {
  rows: u32, V: u32, temperature: f32, topK: u32,
  topP: f32, q: f32, seedLo: u32, seedHi: u32,   // q = f32(1 − topP), rounded as torch rounds it
  step: u32, n: u32, scale: f32, c0: u32,
  c1: u32, c2: u32, c3: u32, _pad: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Logits: array<f32>;
// u32 for every entry point: token ids (an i32 tensor) and float bits (an f32 tensor) alike
@group(0) @binding(2) var<storage, read_write> Out: array<u32>;

const WG: u32 = 256u;
const MAXV: u32 = 3072u;
// -inf logits (masked tokens) become this: WGSL may assume floats are finite
const NEG_BIG: f32 = -3.0e38;
const NONE: u32 = 0xFFFFFFFFu;
const SALT: u32 = 0x53414D50u; // 'SAMP': keeps the sampler's counters apart from other users of the seed

var<workgroup> buf: array<f32, MAXV>;
var<workgroup> red: array<f32, WG>;
var<workgroup> red2: array<f32, 16>;
var<workgroup> redk: array<u32, WG>;
var<workgroup> redk2: array<u32, 16>;
var<workgroup> redi: array<u32, WG>;
var<workgroup> redi2: array<u32, 16>;
var<workgroup> pick: atomic<u32>;
var<workgroup> lastPos: atomic<u32>;

// ---- reductions: two levels of 16, two barriers; every invocation gets the same result (same order) ----

fn wg_sum(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  if (tid < 16u) {
    var s = 0.0;
    for (var k = 0u; k < 16u; k++) { s += red[tid * 16u + k]; }
    red2[tid] = s;
  }
  workgroupBarrier();
  var s = 0.0;
  for (var k = 0u; k < 16u; k++) { s += red2[k]; }
  return s;
}

fn wg_max(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  if (tid < 16u) {
    var s = red[tid * 16u];
    for (var k = 1u; k < 16u; k++) { s = max(s, red[tid * 16u + k]); }
    red2[tid] = s;
  }
  workgroupBarrier();
  var s = red2[0];
  for (var k = 1u; k < 16u; k++) { s = max(s, red2[k]); }
  return s;
}

fn wg_min(v: f32, tid: u32) -> f32 {
  red[tid] = v;
  workgroupBarrier();
  if (tid < 16u) {
    var s = red[tid * 16u];
    for (var k = 1u; k < 16u; k++) { s = min(s, red[tid * 16u + k]); }
    red2[tid] = s;
  }
  workgroupBarrier();
  var s = red2[0];
  for (var k = 1u; k < 16u; k++) { s = min(s, red2[k]); }
  return s;
}

// (key, index): the larger key wins, the lower index on ties
fn better(k: u32, i: u32, bk: u32, bi: u32) -> bool {
  return k > bk || (k == bk && i < bi);
}

fn wg_argmax(key: u32, idx: u32, tid: u32) -> u32 {
  redk[tid] = key;
  redi[tid] = idx;
  workgroupBarrier();
  if (tid < 16u) {
    var bk = redk[tid * 16u];
    var bi = redi[tid * 16u];
    for (var k = 1u; k < 16u; k++) {
      let j = tid * 16u + k;
      if (better(redk[j], redi[j], bk, bi)) { bk = redk[j]; bi = redi[j]; }
    }
    redk2[tid] = bk;
    redi2[tid] = bi;
  }
  workgroupBarrier();
  var bk = redk2[0];
  var bi = redi2[0];
  for (var k = 1u; k < 16u; k++) {
    if (better(redk2[k], redi2[k], bk, bi)) { bk = redk2[k]; bi = redi2[k]; }
  }
  return bi;
}

// A float's bits mapped so that unsigned order is numeric order (-inf < … < -0 < +0 < … < +inf).
fn okey(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// ---- Philox-4x32-10 (Salmon et al. 2011), with the 32×32 → 64-bit product built from 16-bit halves ----

fn mulhi(a: u32, b: u32) -> u32 {
  let a0 = a & 0xFFFFu;
  let a1 = a >> 16u;
  let b0 = b & 0xFFFFu;
  let b1 = b >> 16u;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let mid = ((a0 * b0) >> 16u) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu);
  return a1 * b1 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
}

fn philox(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = counter;
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) { k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u); }
    let x = c.x;
    let z = c.z;
    c = vec4<u32>(mulhi(0xCD9E8D57u, z) ^ c.y ^ k.x, 0xCD9E8D57u * z, mulhi(0xD2511F53u, x) ^ c.w ^ k.y, 0xD2511F53u * x);
  }
  return c;
}

// ---- the filter ----

fn argmax_row(row: u32, tid: u32) -> u32 {
  let base = row * p.V;
  var bk = 0u;
  var bi = NONE;
  for (var i = tid; i < p.V; i += WG) {
    let k = okey(Logits[base + i]);
    if (better(k, i, bk, bi)) { bk = k; bi = i; }
  }
  return wg_argmax(bk, bi, tid);
}

// Leaves in buf[0..V) the probabilities after temperature, top-k and top-p, not renormalised (removed = 0).
// Each invocation touches only its own elements i ≡ tid (mod WG), so only the reductions synchronise.
fn filter_row(row: u32, tid: u32) {
  let base = row * p.V;
  let negKey = okey(NEG_BIG);
  for (var i = tid; i < p.V; i += WG) {
    let x = Logits[base + i] / p.temperature;
    buf[i] = select(x, NEG_BIG, okey(x) < negKey);
  }

  // top-k: the largest key t with #{key ≥ t} ≥ K is the K-th largest value's key
  var kthr = 0u;
  if (p.topK > 0u && p.topK < p.V) {
    var lo = 0u;
    var hi = NONE;
    for (var it = 0u; it < 32u; it++) {
      let d = hi - lo;
      let mid = lo + (d >> 1u) + (d & 1u);
      var c = 0.0;
      for (var i = tid; i < p.V; i += WG) {
        if (okey(buf[i]) >= mid) { c += 1.0; }
      }
      if (wg_sum(c, tid) >= f32(p.topK)) { lo = mid; } else { hi = mid - 1u; }
    }
    kthr = lo;
  }

  // softmax over the kept logits
  var mx = NEG_BIG;
  for (var i = tid; i < p.V; i += WG) {
    if (okey(buf[i]) >= kthr) { mx = max(mx, buf[i]); }
  }
  let m = wg_max(mx, tid);
  var z = 0.0;
  for (var i = tid; i < p.V; i += WG) {
    let x = buf[i];
    let e = select(0.0, exp(x - m), okey(x) >= kthr);
    buf[i] = e;
    z += e;
  }
  let total = wg_sum(z, tid);
  for (var i = tid; i < p.V; i += WG) { buf[i] = buf[i] / total; }

  // top-p. Probabilities are ≥ +0, so their bits order like their values.
  if (p.topP > 0.0 && p.topP < 1.0) {
    var lmax = 0.0;
    for (var i = tid; i < p.V; i += WG) { lmax = max(lmax, buf[i]); }
    let pmaxb = bitcast<u32>(wg_max(lmax, tid));
    // the largest t (as bits) with H(t) = Σ_{p ≤ t} p ≤ q; H(0) = 0 ≤ q
    var lo = 0u;
    var hi = pmaxb;
    var hlo = 0.0;
    for (var it = 0u; it < 31u; it++) {
      let d = hi - lo;
      let mid = lo + (d >> 1u) + (d & 1u);
      var s = 0.0;
      for (var i = tid; i < p.V; i += WG) {
        if (bitcast<u32>(buf[i]) <= mid) { s += buf[i]; }
      }
      let h = wg_sum(s, tid);
      if (h <= p.q) { lo = mid; hlo = h; } else { hi = mid - 1u; }
    }
    // Everything removed (only when rounding leaves Σp ≤ q): min_tokens_to_keep = 1 keeps the top token.
    let allRm = lo >= pmaxb;
    let cut = select(lo, pmaxb - 1u, allRm);
    // the tie group just above the cut: its value v and size n
    var lmin = 2.0;
    for (var i = tid; i < p.V; i += WG) {
      if (bitcast<u32>(buf[i]) > cut) { lmin = min(lmin, buf[i]); }
    }
    let v = wg_min(lmin, tid);
    let vb = bitcast<u32>(v);
    var cnt = 0.0;
    for (var i = tid; i < p.V; i += WG) {
      if (bitcast<u32>(buf[i]) == vb) { cnt += 1.0; }
    }
    let n = u32(wg_sum(cnt, tid));
    // how many of the group the ascending cumulative sum still removes (almost always 0)
    var r = 0u;
    if (allRm) {
      r = n - 1u;
    } else {
      var c = hlo;
      for (var k = 0u; k < n; k++) {
        c += v;
        if (c <= p.q) { r++; } else { break; }
      }
      if (vb == pmaxb) { r = min(r, n - 1u); }
    }
    // those are the r lowest indices of the group: the smallest e with #{i < e in the group} ≥ r
    var elo = 0u;
    var ehi = p.V;
    for (var it = 0u; it < 13u; it++) {
      let mid = (elo + ehi) / 2u;
      var c = 0.0;
      for (var i = tid; i < mid; i += WG) {
        if (bitcast<u32>(buf[i]) == vb) { c += 1.0; }
      }
      if (wg_sum(c, tid) >= f32(r)) { ehi = mid; } else { elo = mid + 1u; }
    }
    for (var i = tid; i < p.V; i += WG) {
      let b = bitcast<u32>(buf[i]);
      if (b <= cut || (b == vb && i < ehi)) { buf[i] = 0.0; }
    }
  }
}

// Inverse CDF over buf in index order. Invocation tid owns the contiguous chunk [tid·C, tid·C + C).
fn draw(row: u32, tid: u32) -> u32 {
  if (tid == 0u) {
    atomicStore(&pick, NONE);
    atomicStore(&lastPos, 0u);
  }
  workgroupBarrier(); // buf was written in the strided layout
  let C = (p.V + WG - 1u) / WG;
  let start = min(tid * C, p.V);
  let end = min(start + C, p.V);
  var s = 0.0;
  for (var i = start; i < end; i++) { s += buf[i]; }
  red[tid] = s;
  workgroupBarrier();
  if (tid < 16u) {
    var t = 0.0;
    for (var k = 0u; k < 16u; k++) { t += red[tid * 16u + k]; }
    red2[tid] = t;
  }
  workgroupBarrier();
  var pre = 0.0;
  var total = 0.0;
  let g = tid / 16u;
  for (var k = 0u; k < 16u; k++) {
    if (k < g) { pre += red2[k]; }
    total += red2[k];
  }
  for (var k = g * 16u; k < tid; k++) { pre += red[k]; }

  let bits = philox(vec4<u32>(row, p.step, 0u, SALT), vec2<u32>(p.seedLo, p.seedHi));
  let u = (f32(bits.x >> 8u) + 0.5) * (1.0 / 16777216.0); // in (0, 1)
  let goal = u * total;
  // The first token whose cumulative sum passes the target. Chunk sums round differently from the running
  // sum, so near a chunk edge two invocations may both claim (the lower index wins) or, at the very end,
  // none (then the last token with p > 0). Zero-probability tokens are never picked.
  var c = pre;
  var found = NONE;
  var last = 0u;
  for (var i = start; i < end; i++) {
    let pi = buf[i];
    c += pi;
    if (pi > 0.0) {
      last = i + 1u;
      if (c > goal && found == NONE) { found = i; }
    }
  }
  if (found != NONE) { atomicMin(&pick, found); }
  if (last > 0u) { atomicMax(&lastPos, last); }
  workgroupBarrier();
  let k = atomicLoad(&pick);
  return select(k, atomicLoad(&lastPos) - 1u, k == NONE);
}

// ---- entry points ----

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) tid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  var tok: u32;
  if (p.temperature <= 0.0) {
    tok = argmax_row(row, tid);
  } else {
    filter_row(row, tid);
    tok = draw(row, tid);
  }
  if (tid == 0u) { Out[row] = tok; }
}

@compute @workgroup_size(256)
fn probs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) tid: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= p.rows) { return; }
  let base = row * p.V;
  if (p.temperature <= 0.0) {
    let k = argmax_row(row, tid);
    for (var i = tid; i < p.V; i += WG) { Out[base + i] = bitcast<u32>(select(0.0, 1.0, i == k)); }
    return;
  }
  filter_row(row, tid);
  var s = 0.0;
  for (var i = tid; i < p.V; i += WG) { s += buf[i]; }
  let total = wg_sum(s, tid);
  for (var i = tid; i < p.V; i += WG) { Out[base + i] = bitcast<u32>(buf[i] / total); }
}

@compute @workgroup_size(256)
fn guidance(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= p.n) { return; }
  let c = Logits[i];
  let u = Logits[p.n + i];
  Out[i] = bitcast<u32>(u + (c - u) * p.scale);
}

@compute @workgroup_size(1)
fn rng() {
  _ = Logits[0]; // keeps the binding layout shared with the other entry points
  let r = philox(vec4<u32>(p.c0, p.c1, p.c2, p.c3), vec2<u32>(p.seedLo, p.seedHi));
  Out[0] = r.x;
  Out[1] = r.y;
  Out[2] = r.z;
  Out[3] = r.w;
}
