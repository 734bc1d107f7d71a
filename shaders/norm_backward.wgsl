// dx of LayerNorm and RMSNorm (llm.c style), one workgroup of 64 per row. With n = (x − mean)·rstd (mean = 0
// for RMSNorm) and dn = dy·w: dx = rstd·(dn − mean(dn) − n·mean(dn·n)); RMSNorm drops the mean(dn) term.
// Both sums come out of one vec2 reduction. flags: bit 0 has weight, bit 1 RMS (Mean is then bound to Rstd
// and not read). The weight and bias gradients are column sums: norm_param_grad.wgsl.

struct P { rows: u32, C: u32, flags: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read> DY: array<f32>;
@group(0) @binding(4) var<storage, read> Mean: array<f32>;
@group(0) @binding(5) var<storage, read> Rstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> DX: array<f32>;

#include "lib/row_reduce_vec2.wgsl"
#include "lib/row_kernel.wgsl"

fn row_main(row: u32, base: u32, C: u32, t: u32) {
  let hasW = (p.flags & 1u) != 0u;
  let rms = (p.flags & 2u) != 0u;
  let mean = select(Mean[row], 0.0, rms);
  let rstd = Rstd[row];
  var acc = vec2<f32>(0.0);
  for (var c = t; c < C; c += WG) {
    let n = (X[base + c] - mean) * rstd;
    var dn = DY[base + c];
    if (hasW) { dn *= W[c]; }
    acc += vec2<f32>(dn, dn * n);
  }
  let m = wg_sum2(acc, t) / f32(C);
  let mdn = select(m.x, 0.0, rms);
  for (var c = t; c < C; c += WG) {
    let n = (X[base + c] - mean) * rstd;
    var dn = DY[base + c];
    if (hasW) { dn *= W[c]; }
    DX[base + c] = rstd * (dn - mdn - n * m.y);
  }
}
