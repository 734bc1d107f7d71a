// PyTorch's nn.Linear: y = x·Wᵀ (+ b), the weight [out, in] as checkpoints store it. The module knows its path in
// the checkpoint (`decoder.model.decoder.layers.0.fc1`, what PEFT calls the module name), so adapters find and
// name it without a second copy of the key tree.

import type { Tensor } from '../tensor.js';
import * as ops from '../ops.js';
import type { Weights } from './weights.js';

/** Something that supplies the weight a Linear's forward uses in place of its own (LoRA's W + s·B·A). */
export interface WeightAdapter {
  weight(): Tensor;
}

export class Linear {
  /** Set only while adapters train (see train/lora.ts); the stored weight itself never changes. */
  adapter: WeightAdapter | null = null;

  constructor(
    /** The module's checkpoint path (its keys are `${path}.weight` / `${path}.bias`). */
    readonly path: string,
    /** [out, in] */
    readonly weight: Tensor,
    /** [out] */
    readonly bias: Tensor | null = null,
  ) {}

  /** `w` at the module; a bias is read when `bias` is true. */
  static async load(w: Weights, inFeatures: number, outFeatures: number, bias = false): Promise<Linear> {
    return new Linear(
      w.prefix,
      await w.get('weight', [outFeatures, inFeatures]),
      bias ? await w.get('bias', [outFeatures]) : null,
    );
  }

  get inFeatures(): number { return this.weight.shape[1]; }
  get outFeatures(): number { return this.weight.shape[0]; }

  /** [..., in] → [..., out], with an activation fused into the matmul's epilogue. */
  forward(x: Tensor, act?: ops.Activation): Tensor {
    return ops.linear(x, this.adapter ? this.adapter.weight() : this.weight, this.bias ?? undefined, act);
  }

  parameters(): Tensor[] {
    return this.bias ? [this.weight, this.bias] : [this.weight];
  }
}
