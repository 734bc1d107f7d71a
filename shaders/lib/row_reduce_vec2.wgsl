// Pairs of sums over a workgroup of 64 invocations (two reductions for the barriers of one), returned to every
// invocation; the same two-barrier scheme as lib/row_reduce.wgsl.

const WG = 64u;
var<workgroup> red_a: array<vec2<f32>, 64>;
var<workgroup> red_b: array<vec2<f32>, 8>;

fn wg_sum2(v: vec2<f32>, t: u32) -> vec2<f32> {
  red_a[t] = v;
  workgroupBarrier();
  if (t < 8u) {
    var s = vec2<f32>(0.0);
    for (var k = 0u; k < 8u; k++) { s += red_a[k * 8u + t]; }
    red_b[t] = s;
  }
  workgroupBarrier();
  var s = vec2<f32>(0.0);
  for (var k = 0u; k < 8u; k++) { s += red_b[k]; }
  return s;
}
