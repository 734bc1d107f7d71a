// PyTorch's nn.Linear: y = x·Wᵀ (+ b), the weight [out, in] as checkpoints store it. The module knows its path in
// the checkpoint (`decoder.model.decoder.layers.0.fc1`, what PEFT calls the module name), so adapters find and
// name it without a second copy of the key tree.

import type { Tensor } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import * as ops from '../ops.js';
import { PackedMatrix, type Matrix } from '../kernels/packed.js';
import type { Weights } from './weights.js';

/** Something that supplies the weight a Linear's forward uses in place of its own (LoRA's W + s·B·A). */
export interface WeightAdapter {
  weight(): Tensor;
}

/**
 * What an adapter can wrap: a weight matrix under its module path (a Linear, or one part of a FusedLinear), whose
 * forward uses the adapter's weight while one is attached.
 */
export interface Adaptable {
  readonly path: string;
  adapter: WeightAdapter | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly rt: Runtime;
  /**
   * The f32 weight [out, in] (for a part of a fused matrix, a copy of its rows that the enclosing `tidy` frees);
   * an error for a packed one (what needs the weight's values, like LoRA, needs f32).
   */
  readonly f32Weight: Tensor;
}

function f32Of(path: string, weight: Matrix): Tensor {
  if (weight instanceof PackedMatrix) {
    throw new Error(`${path}: the weight is stored as ${weight.format}; training and adapters need the model loaded with dtype 'f32'`);
  }
  return weight;
}

export class Linear implements Adaptable {
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
  get rt(): Runtime { return this.weight.rt; }

  /** [..., in] → [..., out], with an activation fused into the matmul's epilogue. */
  forward(x: Tensor, act?: ops.Activation): Tensor {
    return ops.linear(x, this.adapter ? this.adapter.weight() : this.weight, this.bias ?? undefined, act);
  }

  /** The f32 weight; an error for a packed one (what needs the weight's values, like LoRA, needs f32). */
  get f32Weight(): Tensor {
    return f32Of(this.path, this.weight);
  }

  parameters(): Tensor[] {
    const w = this.weight instanceof PackedMatrix ? this.weight.words : this.weight;
    return this.bias ? [w, this.bias] : [w];
  }
}

/** Rows [first, first + outFeatures) of a FusedLinear's weight, under their own module path (what adapters wrap). */
export class LinearPart implements Adaptable {
  adapter: WeightAdapter | null = null;

  constructor(readonly path: string, readonly fused: FusedLinear, readonly first: number, readonly outFeatures: number) {}

  get inFeatures(): number { return this.fused.weight.shape[1]; }
  get rt(): Runtime { return this.fused.weight.rt; }

  /** A copy of this part's rows (the fused weight holds them). */
  get f32Weight(): Tensor {
    return ops.narrow(f32Of(this.path, this.fused.weight), 0, this.first, this.outFeatures);
  }
}

/**
 * Linears of one input without bias stacked into one [Σ out, in] matrix at load (self-attention's q, k and v): one
 * matmul instead of several, so a decode step reads the input once and launches one kernel. The checkpoint keeps the
 * parts under their own names, and so do adapters: each part adapts on its own, and while any is attached the fused
 * weight is the parts' effective weights stacked (each W + s·B·A exactly as for a lone Linear).
 */
export class FusedLinear {
  readonly parts: LinearPart[];

  constructor(paths: string[], readonly weight: Matrix) {
    const out = weight.shape[0] / paths.length;
    if (!Number.isInteger(out)) throw new Error(`FusedLinear: ${weight.shape[0]} rows do not split into ${paths.length} parts`);
    this.parts = paths.map((p, i) => new LinearPart(p, this, i * out, out));
  }

  /** The modules `names` under `w`, each [outFeatures, inFeatures], stacked in that order in the load's dtype. */
  static async load(w: Weights, names: string[], inFeatures: number, outFeatures: number): Promise<FusedLinear> {
    const weight = await w.getStacked(names.map((n) => `${n}.weight`), [outFeatures, inFeatures], [names.length * outFeatures, inFeatures], {});
    return new FusedLinear(names.map((n) => w.key(n)), weight);
  }

  /** [..., in] → [..., Σ out]: the parts' outputs side by side. */
  forward(x: Tensor): Tensor {
    if (this.parts.every((p) => !p.adapter)) return ops.linear(x, this.weight);
    return ops.linear(x, ops.concat(this.parts.map((p) => (p.adapter ? p.adapter.weight() : p.f32Weight)), 0));
  }
}
