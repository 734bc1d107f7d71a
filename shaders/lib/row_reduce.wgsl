// Shared by the row kernels (one workgroup of 64 invocations per row): sums and maxima over the workgroup,
// returned to every invocation, with two barriers: 8 invocations each combine 8 of the 64 partials
// (neighbouring lanes read neighbouring words), then every invocation combines those 8. 64 invocations rather
// than 256: on llvmpipe each barrier switches between every 8-lane group, and 64 made the row kernels ~5×
// faster there; 64 per row still gives a GPU plenty of rows in flight.

const WG = 64u;
const F32_MAX = 0x1.fffffep+127f; // the largest finite f32
var<workgroup> red_a: array<f32, 64>;
var<workgroup> red_b: array<f32, 8>;

fn wg_sum(v: f32, t: u32) -> f32 {
  red_a[t] = v;
  workgroupBarrier();
  if (t < 8u) {
    var s = 0.0;
    for (var k = 0u; k < 8u; k++) { s += red_a[k * 8u + t]; }
    red_b[t] = s;
  }
  workgroupBarrier();
  var s = 0.0;
  for (var k = 0u; k < 8u; k++) { s += red_b[k]; }
  return s;
}

fn wg_max(v: f32, t: u32) -> f32 {
  red_a[t] = v;
  workgroupBarrier();
  if (t < 8u) {
    var s = -F32_MAX;
    for (var k = 0u; k < 8u; k++) { s = max(s, red_a[k * 8u + t]); }
    red_b[t] = s;
  }
  workgroupBarrier();
  var s = -F32_MAX;
  for (var k = 0u; k < 8u; k++) { s = max(s, red_b[k]); }
  return s;
}
