// Low-rank adapters (LoRA, Hu et al. 2021; the layout of Hugging Face PEFT) on the decoder's attention
// projections (q/k/v/out of self- and cross-attention) and its feed-forward fc1/fc2:
//   W' = W + (alpha / r) · B·A,   A [r, in] ~ U(−1/√in, 1/√in) (PEFT's kaiming_uniform(a=√5)),  B [out, r] = 0,
// so training starts from the unchanged model. Only A and B train; every other weight is frozen.
//
// How the adapters enter the forward pass: before each forward the effective weight W' is computed (one small
// [out, r]·[r, in] matmul per matrix, recorded on the tape so A and B get gradients) and put in the layer in place
// of W; afterwards W is put back. The LM code (src/model/lm.ts) needs no change. The cost is one extra weight-sized
// tensor per adapted matrix while a step is alive (the unmerged x·Aᵀ·Bᵀ form would avoid it, but needs hooks in
// the LM's forward); optimiser state — the larger saving — is only kept for A and B.

import { Tensor, keep, tidy } from '../tensor.js';
import * as ops from '../ops.js';
import type { MusicgenModel } from '../model/musicgen.js';
import type { Rng } from './data.js';
import { noGrad } from '../autograd.js';

export const LORA_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2'] as const;

/** The field of an LM object that holds a weight, and the checkpoint name of that weight. */
interface Slot {
  holder: Record<string, unknown>;
  key: string;
  name: string;
}

export class LoraAdapter {
  constructor(
    private readonly slot: Slot,
    /** The frozen weight W [out, in]. */
    readonly base: Tensor,
    /** [r, in] */
    readonly A: Tensor,
    /** [out, r] */
    readonly B: Tensor,
    readonly scale: number,
  ) {}

  /** The checkpoint name of the adapted weight, e.g. `decoder.model.decoder.layers.0.fc1.weight`. */
  get name(): string { return this.slot.name; }
  /** PEFT's module path (name without `.weight`). */
  get module(): string { return this.slot.name.replace(/\.weight$/, ''); }

  /** W + scale·B·A (recorded when A or B need gradients). */
  effective(): Tensor {
    return ops.add(this.base, ops.scale(ops.matmul(this.B, this.A), this.scale));
  }

  install(w: Tensor): void { this.slot.holder[this.slot.key] = w; }
  uninstall(): void { this.slot.holder[this.slot.key] = this.base; }
}

export class Lora {
  constructor(readonly adapters: LoraAdapter[], readonly rank: number, readonly alpha: number) {}

  /** Adds adapters of rank `rank` to every target matrix of the model's decoder; `rng` draws A. */
  static create(model: MusicgenModel, rank: number, rng: Rng, alpha = rank): Lora {
    if (!Number.isInteger(rank) || rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${rank}`);
    const adapters: LoraAdapter[] = [];
    for (const slot of loraSlots(model)) {
      const base = slot.holder[slot.key] as Tensor;
      const [out, inp] = base.shape;
      const bound = 1 / Math.sqrt(inp);
      const a = new Float32Array(rank * inp);
      for (let i = 0; i < a.length; i++) a[i] = (2 * rng.next() - 1) * bound;
      const A = keep(Tensor.from(a, [rank, inp], 'f32', base.rt));
      const B = keep(Tensor.zeros([out, rank], 'f32', base.rt));
      A.requiresGrad = true;
      B.requiresGrad = true;
      adapters.push(new LoraAdapter(slot, base, A, B, alpha / rank));
    }
    return new Lora(adapters, rank, alpha);
  }

  /** The trainable tensors with their PEFT names (`base_model.model.<module>.lora_A.weight`, …). */
  namedParameters(): { name: string; tensor: Tensor }[] {
    return this.adapters.flatMap((a) => [
      { name: `base_model.model.${a.module}.lora_A.weight`, tensor: a.A },
      { name: `base_model.model.${a.module}.lora_B.weight`, tensor: a.B },
    ]);
  }

  /** Runs `fn` with the effective weights W + s·B·A in place of W (put back afterwards, also on error). */
  withAdapters<T>(fn: () => T): T {
    for (const a of this.adapters) a.install(a.effective());
    try {
      return fn();
    } finally {
      for (const a of this.adapters) a.uninstall();
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

/** Every adaptable weight of the decoder, as (holder object, field, checkpoint name). */
function loraSlots(model: MusicgenModel): Slot[] {
  const slots: Slot[] = [];
  const dec = 'decoder.model.decoder';
  model.lm.layers.forEach((layer, i) => {
    const p = `${dec}.layers.${i}`;
    const attn = (a: object | null, n: string): void => {
      if (!a) return;
      for (const [key, proj] of [['q', 'q_proj'], ['k', 'k_proj'], ['v', 'v_proj'], ['out', 'out_proj']] as const) {
        slots.push({ holder: a as Record<string, unknown>, key, name: `${p}.${n}.${proj}.weight` });
      }
    };
    attn(layer.selfAttn, 'self_attn');
    attn(layer.crossAttn, 'encoder_attn');
    slots.push({ holder: layer as unknown as Record<string, unknown>, key: 'fc1', name: `${p}.fc1.weight` });
    slots.push({ holder: layer as unknown as Record<string, unknown>, key: 'fc2', name: `${p}.fc2.weight` });
  });
  for (const s of slots) {
    const t = s.holder[s.key];
    if (!(t instanceof Tensor) || t.rank !== 2) throw new Error(`LoRA: ${s.name} is not a matrix in the LM (lm.ts changed?)`);
  }
  return slots;
}
