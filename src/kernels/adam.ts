// The fused Adam / AdamW update (shaders/adamw.wgsl): one dispatch per parameter tensor updates the parameter
// and both moment buffers in place, exactly as torch's single-tensor Adam (torch.optim.Adam / AdamW). The
// learning rate may come from a [1] GPU tensor and the gradient may be scaled by one (clipping), so a whole
// training step runs without reading anything back.

import { shapeStr, type Tensor } from '../tensor.js';
import { launch1d } from './elementwise.js';

export interface AdamStepOptions {
  /** A number, or a [1] f32 tensor holding it (LR schedules computed on the GPU). */
  lr: number | Tensor;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** This parameter's step count after the update: 1 on the first step (bias correction as torch). */
  step: number;
  /** true (default): AdamW's decoupled decay w·(1 − lr·wd); false: classic Adam's L2 term g + wd·w. */
  decoupled?: boolean;
  /** A [1] f32 tensor multiplied into the gradient first (e.g. `clipGradNorm(...).scale`). */
  gradScale?: Tensor;
}

function checkScalar(name: string, t: Tensor): void {
  if (t.dtype !== 'f32' || t.size !== 1) {
    throw new Error(`adamwStep: ${name} must be a [1] f32 tensor, got ${t.dtype}${shapeStr(t)}`);
  }
}

/** Updates `param`, `m` and `v` in place (recorded; nothing is submitted). Not differentiable. */
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, opts: AdamStepOptions): void {
  const { lr, beta1, beta2, eps, weightDecay, step, decoupled = true, gradScale } = opts;
  for (const [name, t] of [['grad', grad], ['m', m], ['v', v]] as const) {
    if (t.dtype !== 'f32' || t.size !== param.size) {
      throw new Error(`adamwStep: ${name} ${t.dtype}${shapeStr(t)} does not match param ${shapeStr(param)}`);
    }
  }
  if (param.dtype !== 'f32') throw new Error(`adamwStep: param must be f32, got ${param.dtype}`);
  if (!Number.isInteger(step) || step < 1) throw new Error(`adamwStep: step must be an integer ≥ 1, got ${step}`);
  if (gradScale) checkScalar('gradScale', gradScale);
  const lrTensor = typeof lr === 'number' ? null : lr;
  if (lrTensor) checkScalar('lr', lrTensor);
  if (param.size === 0) return;
  // As torch: bias corrections and lr-derived scalars in double precision, rounded once to f32.
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  const lrNum = lrTensor ? 1 : (lr as number);
  const rt = param.rt;
  rt.dispatch({
    shader: 'adamw',
    params: {
      n: param.size, hasLr: lrTensor ? 1 : 0, hasScale: gradScale ? 1 : 0, decoupled: decoupled ? 1 : 0,
      lr: lrNum, stepSize: lrTensor ? 1 / bc1 : lrNum / bc1, decay: 1 - lrNum * weightDecay, wd: weightDecay,
      oneMinusBeta1: 1 - beta1, beta2, oneMinusBeta2: 1 - beta2, sqrtBc2: Math.sqrt(bc2), eps,
    },
    // grad stands in for an absent lr/scale tensor: read-only aliasing is allowed and the shader ignores it
    bindings: [grad.binding(), (lrTensor ?? grad).binding(), (gradScale ?? grad).binding(), param.binding(), m.binding(), v.binding()],
    workgroups: launch1d(rt, param.size),
  });
}
