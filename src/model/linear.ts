// PyTorch's nn.Linear: y = x·Wᵀ (+ b), the weight [out, in] as checkpoints store it. The module knows its path in
// the checkpoint (`decoder.model.decoder.layers.0.fc1`, what PEFT calls the module name), so adapters find and
// name it without a second copy of the key tree.

import type { Tensor } from '../tensor.js';
import * as ops from '../ops.js';
import { PackedMatrix, type Matrix } from '../kernels/packed.js';
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
    /** [out, in], f32 or packed (the load's weight dtype) */
    readonly weight: Matrix,
    /** [out] */
    readonly bias: Tensor | null = null,
  ) {}

  /** `w` at the module; a bias is read when `bias` is true. The weight is stored in the load's dtype. */
  static async load(w: Weights, inFeatures: number, outFeatures: number, bias = false): Promise<Linear> {
    return new Linear(
      w.prefix,
      await w.getMatrix('weight', [outFeatures, inFeatures]),
      bias ? await w.get('bias', [outFeatures]) : null,
    );
  }

  get inFeatures(): number { return this.weight.shape[1]; }
  get outFeatures(): number { return this.weight.shape[0]; }

  /** [..., in] → [..., out], with an activation fused into the matmul's epilogue. */
  forward(x: Tensor, act?: ops.Activation): Tensor {
    return ops.linear(x, this.adapter ? this.adapter.weight() : this.weight, this.bias ?? undefined, act);
  }

  /** The f32 weight; an error for a packed one (what needs the weight's values, like LoRA, needs f32). */
  get f32Weight(): Tensor {
    if (this.weight instanceof PackedMatrix) {
      throw new Error(`${this.path}: the weight is stored as ${this.weight.format}; training and adapters need the model loaded with dtype 'f32'`);
    }
    return this.weight;
  }

  parameters(): Tensor[] {
    const w = this.weight instanceof PackedMatrix ? this.weight.words : this.weight;
    return this.bias ? [w, this.bias] : [w];
  }
}
