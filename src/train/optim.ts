// Adam and AdamW over a list of parameter tensors, matching torch.optim.AdamW / Adam (amsgrad off). Each step
// is one fused dispatch per parameter (src/kernels/adam.ts); the moments live on the GPU, allocated on a
// parameter's first update and kept out of tidy scopes. Step counts are per parameter, as torch's state: a
// parameter without a gradient is skipped and its count does not advance.

import { Tensor, keep } from '../tensor.js';
import { adamwStep } from '../kernels/adam.js';
import { zeroGrad } from '../autograd.js';

export interface AdamWOptions {
  lr: number;
  /** Default [0.9, 0.95]. */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /** Default 0.1 (decoupled, as AdamW). */
  weightDecay?: number;
  /** Default true. false gives classic Adam: the decay is an L2 term added to the gradient. */
  decoupled?: boolean;
}

/** What `exportState` returns and `importState` takes; m[i] and v[i] are empty where steps[i] is 0. */
export interface AdamState {
  /** Number of `step()` calls. */
  step: number;
  /** Per-parameter step counts (bias correction). */
  steps: number[];
  m: Float32Array[];
  v: Float32Array[];
}

export class AdamW {
  readonly params: Tensor[];
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;
  /** Calls to `step()`. */
  stepCount = 0;
  private steps: number[];
  private m: (Tensor | null)[];
  private v: (Tensor | null)[];

  constructor(params: Tensor[], opts: AdamWOptions) {
    const { lr, betas = [0.9, 0.95], eps = 1e-8, weightDecay = 0.1, decoupled = true } = opts;
    if (new Set(params).size !== params.length) throw new Error('AdamW: a parameter is listed twice');
    for (const p of params) if (p.dtype !== 'f32') throw new Error(`AdamW: parameters must be f32, got ${p.dtype}`);
    this.params = [...params];
    this.lr = lr;
    [this.beta1, this.beta2] = betas;
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.decoupled = decoupled;
    this.steps = params.map(() => 0);
    this.m = params.map(() => null);
    this.v = params.map(() => null);
  }

  /**
   * One update of every parameter that has a gradient. `lrNow` overrides the learning rate for this step (a
   * number, or a [1] f32 GPU tensor from a schedule); `gradScale` ([1] f32, e.g. `clipGradNorm(...).scale`)
   * multiplies every gradient first. Recorded only: nothing is submitted or read back.
   */
  step(lrNow: number | Tensor = this.lr, gradScale?: Tensor): void {
    this.stepCount++;
    this.params.forEach((p, i) => {
      const g = p.grad;
      if (!g) return;
      if (!this.m[i]) {
        this.m[i] = keep(Tensor.zeros(p.shape, 'f32', p.rt));
        this.v[i] = keep(Tensor.zeros(p.shape, 'f32', p.rt));
      }
      this.steps[i]++;
      adamwStep(p, g, this.m[i]!, this.v[i]!, {
        lr: lrNow, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay,
        step: this.steps[i], decoupled: this.decoupled, gradScale,
      });
    });
  }

  /** Drops every parameter's gradient (backward accumulates into .grad otherwise). */
  zeroGrad(): void {
    for (const p of this.params) zeroGrad(p);
  }

  /** Copies the optimiser state to the CPU (for checkpoints). */
  async exportState(): Promise<AdamState> {
    const m: Float32Array[] = [];
    const v: Float32Array[] = [];
    for (let i = 0; i < this.params.length; i++) {
      m.push(this.m[i] ? ((await this.m[i]!.read()) as Float32Array) : new Float32Array(0));
      v.push(this.v[i] ? ((await this.v[i]!.read()) as Float32Array) : new Float32Array(0));
    }
    return { step: this.stepCount, steps: [...this.steps], m, v };
  }

  /** Restores `exportState`'s result for the same parameter list. */
  importState(state: AdamState): void {
    const n = this.params.length;
    if (state.m.length !== n || state.v.length !== n || state.steps.length !== n) {
      throw new Error(`AdamW.importState: state for ${state.m.length} parameters, optimiser has ${n}`);
    }
    this.params.forEach((p, i) => {
      const m = state.m[i];
      const v = state.v[i];
      const fresh = state.steps[i] === 0;
      const want = fresh ? 0 : p.size;
      if (m.length !== want || v.length !== want) {
        throw new Error(`AdamW.importState: parameter ${i} [${p.shape.join(', ')}]: moments of ${m.length}/${v.length} values`);
      }
      this.m[i]?.dispose();
      this.v[i]?.dispose();
      this.m[i] = fresh ? null : keep(Tensor.from(m, p.shape, 'f32', p.rt));
      this.v[i] = fresh ? null : keep(Tensor.from(v, p.shape, 'f32', p.rt));
    });
    this.steps = [...state.steps];
    this.stepCount = state.step;
  }

  /** Frees the moment buffers. */
  dispose(): void {
    for (const t of [...this.m, ...this.v]) t?.dispose();
    this.m = this.params.map(() => null);
    this.v = this.params.map(() => null);
  }
}

/** Classic Adam (torch.optim.Adam): betas (0.9, 0.999) and no weight decay unless given; decay is L2. */
export class Adam extends AdamW {
  constructor(params: Tensor[], opts: Omit<AdamWOptions, 'decoupled'>) {
    super(params, { ...opts, betas: opts.betas ?? [0.9, 0.999], weightDecay: opts.weightDecay ?? 0, decoupled: false });
  }
}
