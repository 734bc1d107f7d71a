// Reductions over rows, one workgroup of 64 per row: row r covers X[r·C .. min(r·C + C, n)) (the bound n lets
// sumAll cut a flat tensor into equal chunks with a ragged last one).
// mode 0 sum, 1 mean (÷ C), 2 max with its index (first one on ties, as torch.max / torch.argmax). I is an i32
// output (index within the row) written only by mode 2. NaN is not propagated.

struct P { rows: u32, C: u32, n: u32, mode: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<storage, read_write> I: array<i32>;

#include "lib/row_reduce.wgsl"

const NONE = 0xffffffffu;
// the indices beside lib/row_reduce.wgsl's red_a / red_b, for wg_argmax
var<workgroup> idx_a: array<u32, 64>;
var<workgroup> idx_b: array<u32, 8>;

// Is (v, i) a better max than (bv, bi)? Larger value, or equal value at a smaller index. NONE marks "no
// element yet", so a row of −inf still yields −inf and its first index.
fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  return i != NONE && (bi == NONE || v > bv || (v == bv && i < bi));
}

// (max, first index of it) over the workgroup, same two-barrier scheme.
fn wg_argmax(v: f32, i: u32, t: u32) -> vec2<u32> {
  red_a[t] = v;
  idx_a[t] = i;
  workgroupBarrier();
  if (t < 8u) {
    var bv = 0.0;
    var bi = NONE;
    for (var k = 0u; k < 8u; k++) {
      let j = k * 8u + t;
      if (better(red_a[j], idx_a[j], bv, bi)) { bv = red_a[j]; bi = idx_a[j]; }
    }
    red_b[t] = bv;
    idx_b[t] = bi;
  }
  workgroupBarrier();
  var bv = 0.0;
  var bi = NONE;
  for (var k = 0u; k < 8u; k++) {
    if (better(red_b[k], idx_b[k], bv, bi)) { bv = red_b[k]; bi = idx_b[k]; }
  }
  return vec2<u32>(bitcast<u32>(bv), bi);
}

#include "lib/row_kernel.wgsl"

fn row_main(row: u32, start: u32, C: u32, t: u32) {
  let end = min(start + C, p.n);
  if (p.mode == 2u) {
    var bv = 0.0;
    var bi = NONE;
    // each invocation's indices increase, so a strict > keeps its first max
    for (var i = start + t; i < end; i += WG) {
      let v = X[i];
      if (bi == NONE || v > bv) { bv = v; bi = i; }
    }
    let r = wg_argmax(bv, bi, t);
    if (t == 0u) {
      Y[row] = bitcast<f32>(r.x);
      I[row] = i32(r.y - start);
    }
  } else {
    var s = 0.0;
    for (var i = start + t; i < end; i += WG) { s += X[i]; }
    s = wg_sum(s, t);
    if (t == 0u) { Y[row] = select(s, s / f32(C), p.mode == 1u); }
  }
}
