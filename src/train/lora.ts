// Low-rank adapters (LoRA, Hu et al. 2021; the layout of Hugging Face PEFT) on the decoder's attention
// projections (q/k/v/out of self- and cross-attention) and its feed-forward fc1/fc2:
//   W' = W + (alpha / r) · B·A,   A [r, in] ~ U(−1/√in, 1/√in) (PEFT's kaiming_uniform(a=√5)),  B [out, r] = 0,
// so training starts from the unchanged model. Only A and B train; every other weight is frozen.
//
// How the adapters enter the forward pass: each wraps one of the LM's `Linear` modules (model/linear.ts) as its
// weight adapter, so while attached that Linear's forward uses the effective weight W' (one small [out, r]·[r, in]
// matmul, recorded on the tape so A and B get gradients) instead of W, which never changes. Self-attention's
// q/k/v are one fused matrix: each is a `LinearPart` of it with its own adapter, and the fused forward stacks the
// parts' W' (the same numbers as three separate Linears). The cost is one extra
// weight-sized tensor per adapted matrix while a step is alive (the unmerged x·Aᵀ·Bᵀ form would avoid it, at the
// price of another rounding of the result); optimiser state — the larger saving — is only kept for A and B.
// Module names come from the Linear itself (its checkpoint path), as PEFT names them.

import { Tensor, keep, tidy } from '../tensor.js';
import type { MusicgenModel } from '../model/musicgen.js';
import type { Adaptable, WeightAdapter } from '../model/linear.js';
import type { NamedTensor } from '../model/weights.js';
import { loraWeight } from '../model/adapter.js';
import type { Rng } from './data.js';
import { noGrad } from '../autograd.js';

export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'] as const;

export class LoraAdapter implements WeightAdapter {
  constructor(
    /** The adapted module. */
    readonly linear: Adaptable,
    /** [r, in] */
    readonly A: Tensor,
    /** [out, r] */
    readonly B: Tensor,
    readonly scale: number,
  ) {}

  /** The frozen weight W [out, in] (a copy of its rows for a part of a fused matrix). */
  get base(): Tensor { return this.linear.f32Weight; }
  /** The checkpoint name of the adapted weight, e.g. `decoder.model.decoder.layers.0.fc1.weight`. */
  get name(): string { return `${this.linear.path}.weight`; }
  /** PEFT's module path. */
  get module(): string { return this.linear.path; }

  /** W + scale·B·A (recorded when A or B need gradients). */
  effective(): Tensor {
    // the same formula as loading with the adapter file (model/adapter.ts): generation with either is identical
    return loraWeight(this.base, this.A, this.B, this.scale);
  }

  weight(): Tensor {
    return this.effective();
  }
}

export class Lora {
  constructor(readonly adapters: LoraAdapter[], readonly rank: number, readonly alpha: number) {}

  /** Adds adapters of rank `rank` to every target matrix of the model's decoder; `rng` draws A. */
  static create(model: MusicgenModel, rank: number, rng: Rng, alpha = rank): Lora {
    if (!Number.isInteger(rank) || rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${rank}`);
    const adapters: LoraAdapter[] = [];
    for (const linear of loraTargets(model)) {
      tidy(() => linear.f32Weight.shape); // throws for a packed weight (a part's rows are a copy: freed here)
      const [out, inp] = [linear.outFeatures, linear.inFeatures];
      const bound = 1 / Math.sqrt(inp);
      const a = new Float32Array(rank * inp);
      for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
      const A = keep(Tensor.from(a, [rank, inp], 'f32', linear.rt));
      const B = keep(Tensor.zeros([out, rank], 'f32', linear.rt));
      A.requiresGrad = true;
      B.requiresGrad = true;
      adapters.push(new LoraAdapter(linear, A, B, alpha / rank));
    }
    return new Lora(adapters, rank, alpha);
  }

  /** The trainable tensors with their PEFT names (`base_model.model.<module>.lora_A.weight`, …). */
  namedParameters(): NamedTensor[] {
    const named = (name: string, tensor: Tensor): NamedTensor => ({ tensor, names: [name], partShape: [...tensor.shape] });
    return this.adapters.flatMap((a) => [
      named(`base_model.model.${a.module}.lora_A.weight`, a.A),
      named(`base_model.model.${a.module}.lora_B.weight`, a.B),
    ]);
  }

  /** Runs `fn` with the adapted Linears using W + s·B·A in place of W (detached afterwards, also on error). */
  withAdapters<T>(fn: () => T): T {
    for (const a of this.adapters) a.linear.adapter = a;
    try {
      return fn();
    } finally {
      for (const a of this.adapters) a.linear.adapter = null;
    }
  }

  /** The merged weights W + s·B·A by checkpoint name (for the output model). */
  async merged(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const a of this.adapters) {
      const w = tidy(() => noGrad(() => a.effective()));
      out.set(a.name, (await w.read()) as Float32Array);
      w.dispose();
    }
    return out;
  }

  /** PEFT's adapter_config.json for these adapters. */
  adapterConfig(baseModel: string): Record<string, unknown> {
    return {
      peft_type: 'LORA',
      task_type: null,
      base_model_name_or_path: baseModel,
      r: this.rank,
      lora_alpha: this.alpha,
      lora_dropout: 0,
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      // full module paths: T5 and EnCodec have no modules of these names, but a regex keeps it explicit
      target_modules: `^decoder\\.model\\.decoder\\.layers\\.\\d+\\.((self_attn|encoder_attn)\\.(q_proj|k_proj|v_proj|out_proj)|fc1|fc2)$`,
      modules_to_save: null,
    };
  }

  dispose(): void {
    for (const a of this.adapters) {
      a.A.dispose();
      a.B.dispose();
    }
  }
}

/** The decoder's Linears whose module name is a LoRA target, in layer order. */
function loraTargets(model: MusicgenModel): Adaptable[] {
  const targets = new Set<string>(LORA_TARGETS);
  return model.lm.layers.flatMap((layer) => layer.linears()).filter((l) => targets.has(l.path.split('.').pop()!));
}
