// The decode-time matmul: y[R, N] = act(x[R, K] · Wᵀ + bias) for a handful of rows R (one token per batch row,
// twice with guidance) against a weight W [N, K] as PyTorch stores a Linear. A decode step reads every weight
// once, so this kernel is about memory traffic: one subgroup computes 4 output rows, its lanes reading
// consecutive vec4s along k (so a subgroup reads 8·16 = 128 contiguous bytes per row and step on llvmpipe),
// and `subgroupAdd` combines the lanes. The x rows are unrolled in registers, so the code is generated per R.
// matmul() routes here when it applies (see `gemvApplies`); measured 2.4× the general kernel on lavapipe.

import { Tensor } from '../tensor.js';
import { shaderSource, type Runtime } from '../runtime.js';

const ROWS_PER_SUBGROUP = 4;
const WG = 256; // 256 rather than 64: ~15% more bandwidth on lavapipe (fewer workgroups to schedule); SwiftShader allows 256
export const GEMV_MAX_ROWS = 8;

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function gemvCode(R: number): string {
  const O = ROWS_PER_SUBGROUP;
  return `
enable subgroups;
struct P { N: u32, K: u32, hasBias: u32, act: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> W: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> Bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;

${shaderSource('lib/matmul_finish')}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgs: u32) {
  let n0 = ((gid.x + gid.y * nwg.x * ${WG}u) / sgs) * ${O}u;
  let K4 = p.K / 4u;
  // rows past N (the last subgroup's) are clamped for the loads and never stored
${range(O).map((j) => `  var a${j}: array<f32, ${R}>;\n  let w${j} = min(n0 + ${j}u, p.N - 1u) * K4;`).join('\n')}
  for (var k4 = lane; k4 < K4; k4 += sgs) {
${range(R).map((r) => `    let x${r} = X[${r}u * K4 + k4];`).join('\n')}
${range(O).map((j) => `    { let w = W[w${j} + k4];\n${range(R).map((r) => `      a${j}[${r}] += dot(x${r}, w);`).join('\n')} }`).join('\n')}
  }
${range(O).map((j) => range(R).map((r) =>
    `  { let s = subgroupAdd(a${j}[${r}]); if (lane == 0u && n0 + ${j}u < p.N) { Y[${r}u * p.N + n0 + ${j}u] = finish(s, n0 + ${j}u); } }`).join('\n')).join('\n')}
}`;
}

/** Whether `gemv` can compute x [R, K] · Wᵀ for W [N, K]: few rows, K a multiple of 4, subgroups available. */
export function gemvApplies(rt: Runtime, rows: number, K: number): boolean {
  return rt.subgroups && rows >= 1 && rows <= GEMV_MAX_ROWS && K % 4 === 0;
}

/**
 * y = act(x · Wᵀ + bias) for x holding R = x.size / K rows; act 0 none, 1 relu, 2 gelu; y gets `outShape`
 * (R·N elements). Forward only: matmul sends recorded work to the general kernel.
 */
export function gemv(x: Tensor, w: Tensor, bias: Tensor | undefined, act: number, outShape: readonly number[]): Tensor {
  const rt = x.rt;
  const [N, K] = w.shape;
  const rows = x.size / K;
  const y = Tensor.empty(outShape, 'f32', rt);
  const invocations = Math.ceil(N / ROWS_PER_SUBGROUP) * rt.maxSubgroupSize;
  rt.dispatch({
    shader: `gemv_r${rows}`,
    code: gemvCode(rows),
    params: { N, K, hasBias: bias ? 1 : 0, act },
    bindings: [x.binding(), w.binding(), (bias ?? x).binding(), y.binding()],
    workgroups: rt.grid(Math.ceil(invocations / WG)),
  });
  return y;
}
