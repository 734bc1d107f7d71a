// Weight gradient of conv1d, summed over batch and a chunk of output steps:
//   D[z, o, i, k] = Σ_b Σ_{t in chunk z} A[b, o, t] · X[b, g·IG + i, t·stride − padL + k·dil]   (g = o's group)
// A [B, O, TA] (conv1d's dY), X [B, I, TX] (conv1d's input), D [chunks, O, IG, K]; the chunks are summed after.
// Also the weight gradient of conv_transpose1d, with A = its input and X = its dY.
//
// Like a matmul with M = O, N = IG·K and the reduction over (b, t): each invocation computes 4 o × 4 n in
// registers; n = i·K + k, interleaved 8 apart so neighbouring invocations read nearby samples.
// Grid: x blocks of 32 n, y = groups × blocks of 32 o, z chunks. Workgroup 8 × 8.

struct P {
  TA: u32, TX: u32, O: u32, I: u32,
  OG: u32, IG: u32, K: u32, stride: u32,
  dil: u32, padL: i32, oBlocks: u32, chunk: u32,
  B: u32, _p0: u32, _p1: u32, _p2: u32,
}
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read_write> D: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let g = wg.y / p.oBlocks;
  let oBase = (wg.y % p.oBlocks) * 32u + lid.y * 4u; // within the group
  let N = p.IG * p.K;
  let nBase = wg.x * 32u + lid.x;
  if (oBase >= p.OG || nBase >= N) { return; }
  let z = wg.z;
  let tBeg = z * p.chunk;
  let tEnd = min(tBeg + p.chunk, p.TA);
  let TX = i32(p.TX);

  var oRow: array<u32, 4>; // channel of A (clamped within the group)
  for (var c = 0u; c < 4u; c++) { oRow[c] = g * p.OG + min(oBase + c, p.OG - 1u); }
  var xCh: array<u32, 4>;  // channel of X
  var kOff: array<i32, 4>; // k·dil − padL
  for (var j = 0u; j < 4u; j++) {
    let n = min(nBase + 8u * j, N - 1u);
    xCh[j] = g * p.IG + n / p.K;
    kOff[j] = i32((n % p.K) * p.dil) - p.padL;
  }

  var acc: array<vec4<f32>, 4>;
  for (var b = 0u; b < p.B; b++) {
    var aRow: array<u32, 4>;
    for (var c = 0u; c < 4u; c++) { aRow[c] = (b * p.O + oRow[c]) * p.TA; }
    var xRow: array<u32, 4>;
    for (var j = 0u; j < 4u; j++) { xRow[j] = (b * p.I + xCh[j]) * p.TX; }
    for (var t = tBeg; t < tEnd; t++) {
      let ts = i32(t * p.stride);
      var xv: vec4<f32>;
      for (var j = 0u; j < 4u; j++) {
        let s = ts + kOff[j];
        let v = X[xRow[j] + u32(clamp(s, 0, TX - 1))];
        xv[j] = select(0.0, v, s >= 0 && s < TX);
      }
      acc[0] += A[aRow[0] + t] * xv;
      acc[1] += A[aRow[1] + t] * xv;
      acc[2] += A[aRow[2] + t] * xv;
      acc[3] += A[aRow[3] + t] * xv;
    }
  }

  let dBase = z * p.O * N;
  for (var c = 0u; c < 4u; c++) {
    let oc = oBase + c;
    if (oc >= p.OG) { break; }
    let row = dBase + (g * p.OG + oc) * N;
    for (var j = 0u; j < 4u; j++) {
      let n = nBase + 8u * j;
      if (n >= N) { break; }
      D[row + n] = acc[c][j];
    }
  }
}
