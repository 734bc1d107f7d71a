// A LoRA adapter in Hugging Face PEFT's format (`adapter_model.safetensors` with `adapter_config.json`, what
// `finetune --lora-rank` writes) applied to a base checkpoint while it loads: each adapted weight is read as
//   W' = W + s·B·A,   s = lora_alpha / r (PEFT's `use_rslora`: lora_alpha / √r),
// keys `base_model.model.<module>.lora_A.weight` [r, in] and `….lora_B.weight` [out, r] for the base's
// `<module>.weight` [out, in]. The merge runs on the GPU with the very formula the trainer's forward uses
// (`loraWeight`), so a model loaded with the adapter computes what the trainer's adapted model computed, bit for bit;
// the base files on disk are never touched. It happens below the loader (an overlay TensorReader, like the
// audiocraft LM overlay), so whatever the loader does with a weight afterwards (stacking, packing) sees W'.
// An adapter that does not fit the base (a module the base lacks, shapes that differ, tensors that are not LoRA
// pairs, ranks that disagree with the config) is refused with the names and shapes involved.

import { Tensor, tidy } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import * as ops from '../ops.js';
import { SafetensorsFile, tensorNotFound, type ByteSource, type Bytes, type TensorInfo, type TensorReader } from '../io/safetensors.js';
import { OverlayReader } from '../io/overlay.js';

/** W + scale·B·A: W [out, in], A [r, in], B [out, r]. The trainer's forward and the loader's merge share it. */
export function loraWeight(W: Tensor, A: Tensor, B: Tensor, scale: number): Tensor {
  return ops.add(W, ops.scale(ops.matmul(B, A), scale));
}

/** An adapter to apply: the safetensors bytes and PEFT's adapter_config.json (parsed). */
export interface AdapterSource {
  weights: ByteSource;
  /** Absent: the file's own metadata holds it (`adapter_config`, as the library's in-memory finetune writes it). */
  config?: Record<string, unknown>;
  /** Where it comes from, for errors. */
  label: string;
}

interface Pair {
  module: string;
  A?: string;
  B?: string;
}

const KEY = /^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$/;

/** The scale of PEFT's config; throws naming what is missing or not supported. */
function loraScale(config: Record<string, unknown>, label: string): { rank: number; scale: number } {
  const bad = (why: string): Error => new Error(`${label}: adapter_config.json ${why}`);
  if (config.peft_type !== undefined && config.peft_type !== 'LORA') throw bad(`is a ${String(config.peft_type)} adapter; only LORA adapters can be applied`);
  const r = config.r;
  const alpha = config.lora_alpha ?? r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw bad(`has no valid rank r (got ${JSON.stringify(r)})`);
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw bad(`has no valid lora_alpha (got ${JSON.stringify(alpha)})`);
  if (config.fan_in_fan_out === true) throw bad('sets fan_in_fan_out (transposed weights, GPT-2 style): MusicGen has none');
  for (const k of ['rank_pattern', 'alpha_pattern'] as const) {
    const v = config[k];
    if (v && typeof v === 'object' && Object.keys(v).length > 0) throw bad(`sets ${k} (per-module ranks): not supported`);
  }
  return { rank: r, scale: config.use_rslora === true ? alpha / Math.sqrt(r) : alpha / r };
}

/** adapter_config.json as kept in the adapter file's metadata (key `adapter_config`). */
function configFromMetadata(file: SafetensorsFile, label: string): Record<string, unknown> {
  const text = file.metadata.adapter_config;
  if (typeof text !== 'string') throw new Error(`${label}: no adapter_config.json beside it and none in its metadata (PEFT's config gives the rank r and lora_alpha)`);
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new Error(`${label}: the adapter_config in its metadata is not valid JSON (${(e as Error).message})`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new Error(`${label}: the adapter_config in its metadata is not a JSON object`);
  return config as Record<string, unknown>;
}

/**
 * `base` with every weight the adapter targets read as W + s·B·A (as f32). Closing the result closes both.
 * `rt` runs the merges.
 */
export async function withLoraAdapter(base: TensorReader, adapter: AdapterSource, rt: Runtime): Promise<TensorReader> {
  const file = await SafetensorsFile.open(adapter.weights, adapter.label);
  try {
    return new LoraOverlay(base, file, adapter, rt);
  } catch (e) {
    await file.close();
    throw e;
  }
}

class LoraOverlay extends OverlayReader {
  readonly label: string;
  /** Base weight name → its adapter pair. */
  private readonly pairs = new Map<string, Required<Pair>>();
  private readonly scale: number;

  constructor(base: TensorReader, private readonly file: SafetensorsFile, adapter: AdapterSource, private readonly rt: Runtime) {
    super(base);
    this.label = `${base.label} with the LoRA adapter ${adapter.label}`;
    const fail = (why: string): Error => new Error(`${adapter.label}: ${why} (not an adapter of ${base.label}?)`);
    const { rank, scale } = loraScale(adapter.config ?? configFromMetadata(file, adapter.label), adapter.label);
    this.scale = scale;
    const byModule = new Map<string, Pair>();
    const foreign: string[] = [];
    for (const key of file.names()) {
      const m = KEY.exec(key);
      if (!m) {
        foreign.push(key);
        continue;
      }
      const p = byModule.get(m[1]) ?? { module: m[1] };
      p[m[2] as 'A' | 'B'] = key;
      byModule.set(m[1], p);
    }
    if (foreign.length > 0) {
      throw fail(`${foreign.length} tensors are not LoRA pairs (base_model.model.<module>.lora_A/lora_B.weight), e.g. ${foreign.slice(0, 3).join(', ')}`);
    }
    if (byModule.size === 0) throw fail('holds no LoRA tensors');
    for (const p of byModule.values()) {
      if (!p.A || !p.B) throw fail(`${p.module} has lora_${p.A ? 'A' : 'B'} but no lora_${p.A ? 'B' : 'A'}`);
      const name = `${p.module}.weight`;
      if (!base.has(name)) {
        const near = tensorNotFound(name, base.label, base.names()).message.replace(/^tensor "[^"]*" not found in [^;]*;?\s*/, '');
        throw fail(`it adapts ${p.module}, which the model lacks${near ? ` (${near})` : ''}`);
      }
      const w = base.info(name).shape;
      const a = file.info(p.A).shape;
      const b = file.info(p.B).shape;
      const shapes = `lora_A [${a.join(', ')}] and lora_B [${b.join(', ')}] for ${name} [${w.join(', ')}]`;
      if (w.length !== 2 || a.length !== 2 || b.length !== 2 || a[1] !== w[1] || b[0] !== w[0] || a[0] !== b[1]) {
        throw fail(`${shapes}: expected lora_A [r, ${w[1] ?? '?'}] and lora_B [${w[0] ?? '?'}, r]`);
      }
      if (a[0] !== rank) throw fail(`${shapes}: rank ${a[0]}, but adapter_config.json says r = ${rank}`);
      this.pairs.set(name, p as Required<Pair>);
    }
  }

  protected covers(name: string): boolean {
    return this.pairs.has(name);
  }

  protected ownInfo(name: string): TensorInfo {
    const { shape } = this.base.info(name);
    return { dtype: 'F32', shape, byteLength: shape.reduce((x, y) => x * y, 1) * 4 };
  }

  /** W + s·B·A on the GPU, read back (one adapted matrix alive at a time while the model loads). */
  protected async ownF32(name: string): Promise<Float32Array<ArrayBuffer>> {
    const p = this.pairs.get(name)!;
    const shape = [...this.base.info(name).shape];
    const [W, A, B] = await Promise.all([this.base.readF32(name), this.file.readF32(p.A), this.file.readF32(p.B)]);
    const merged = tidy(() => loraWeight(
      Tensor.from(W, shape, 'f32', this.rt),
      Tensor.from(A, [...this.file.info(p.A).shape], 'f32', this.rt),
      Tensor.from(B, [...this.file.info(p.B).shape], 'f32', this.rt),
      this.scale,
    ));
    try {
      return (await merged.read()) as Float32Array<ArrayBuffer>;
    } finally {
      merged.dispose();
    }
  }

  protected async ownRaw(name: string): Promise<Bytes> {
    const v = await this.ownF32(name);
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  }

  protected ownI32(name: string): Promise<Int32Array<ArrayBuffer>> {
    return Promise.reject(new Error(`${this.label}: ${name} is a float weight`));
  }

  protected closeOwn(): Promise<void> {
    return this.file.close();
  }
}
