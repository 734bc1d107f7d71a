// A whole MusicGen checkpoint in the transformers layout (`facebook/musicgen-*`): T5 text encoder and its
// projection, EnCodec, the LM, and for melody models the chroma projection. Loads from any CheckpointFolder
// (a local folder in Node, a URL in the browser). The conditioning helpers build exactly what transformers'
// MusicgenForConditionalGeneration / MusicgenMelodyForConditionalGeneration feed the decoder.

import { Tensor, tidy } from '../tensor.js';
import { runtime, type Runtime } from '../runtime.js';
import * as ops from '../ops.js';
import type { ByteSource, CheckpointFolder } from '../io/safetensors.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { withAudiocraftLm } from './audiocraft-lm.js';
import { withLoraAdapter, type AdapterSource } from './adapter.js';
import { Weights, type NamedTensor } from './weights.js';
import { Linear } from './linear.js';
import { T5Encoder } from './t5.js';
import { EncodecModel } from './encodec.js';
import { MusicgenLM, type Conditioning } from './lm.js';
import { parseMusicgenConfig, type MusicgenConfig } from './config.js';
import { TextTokenizer } from './tokenizer.js';
import { isWeightDType, WEIGHT_DTYPES, type WeightDType } from '../quant.js';

export type { MusicgenConfig };

export interface LoadProgress {
  (done: number, total: number, what: string): void;
}

async function readJson(folder: CheckpointFolder, name: string, required: true): Promise<Record<string, unknown>>;
async function readJson(folder: CheckpointFolder, name: string, required: false): Promise<Record<string, unknown> | null>;
async function readJson(folder: CheckpointFolder, name: string, required: boolean): Promise<Record<string, unknown> | null> {
  const text = await folder.readText(name);
  if (text === null) {
    if (!required) return null;
    throw new Error(`${folder.label}: missing ${name} (a MusicGen folder in the transformers format has config.json, model.safetensors or pytorch_model.bin (or a sharded index of either), and tokenizer.json)`);
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${folder.label}/${name}: not valid JSON (${(e as Error).message})`);
  }
}

/** config.json's `quantization.dtype` (written by `musicgen convert`), checked; null when absent. */
function quantizationOf(cfg: Record<string, unknown>, label: string): WeightDType | null {
  const q = cfg.quantization;
  if (q === undefined) return null;
  const dtype = typeof q === 'object' && q !== null ? (q as Record<string, unknown>).dtype : undefined;
  if (!isWeightDType(dtype)) throw new Error(`${label}/config.json: quantization.dtype must be one of ${WEIGHT_DTYPES.join(', ')}, got ${JSON.stringify(dtype)}`);
  return dtype;
}

export class MusicgenModel {
  private constructor(
    readonly cfg: MusicgenConfig,
    readonly tokenizer: TextTokenizer,
    readonly t5: T5Encoder,
    /** enc_to_dec_proj: T5 width → decoder width (absent when they are equal). */
    readonly textProj: Linear | null,
    /** audio_enc_to_dec_proj (melody models): 12 → decoder width. */
    readonly chromaProj: Linear | null,
    readonly encodec: EncodecModel,
    readonly lm: MusicgenLM,
    readonly rt: Runtime,
    /** Every tensor the loader bound, under its checkpoint key(s). */
    private readonly named: NamedTensor[],
    /** How the LM's and T5's matrices are stored (EnCodec is always f32). */
    readonly dtype: WeightDType,
  ) {}

  /**
   * The weight dtype a folder was converted to (`musicgen convert` records it in config.json's `quantization`),
   * or null for an ordinary checkpoint.
   */
  static async storedDType(folder: CheckpointFolder): Promise<WeightDType | null> {
    return quantizationOf(await readJson(folder, 'config.json', true), folder.label);
  }

  get isMelody(): boolean { return this.cfg.model_type === 'musicgen_melody'; }
  get sampleRate(): number { return this.cfg.audio_encoder.sampling_rate; }
  /** 1 mono, 2 stereo (codebooks interleaved L/R in the LM, decoded by a mono EnCodec each). */
  get audioChannels(): number { return this.cfg.decoder.audio_channels ?? 1; }
  get frameRate(): number { return Math.ceil(this.sampleRate / this.encodec.hopLength); }

  static async load(
    folder: CheckpointFolder,
    opts: {
      rt?: Runtime; onProgress?: LoadProgress; maxGroupBytes?: number; lmWeights?: ByteSource; adapter?: AdapterSource;
      /** How to store the LM's and T5's matrices; default: the folder's own (f32 unless converted). */
      dtype?: WeightDType;
    } = {},
  ): Promise<MusicgenModel> {
    const rt = opts.rt ?? runtime();
    const cfgJson = await readJson(folder, 'config.json', true);
    const dtype = opts.dtype ?? quantizationOf(cfgJson, folder.label) ?? 'f32';
    let cfg: MusicgenConfig;
    try {
      cfg = parseMusicgenConfig(cfgJson);
    } catch (e) {
      throw new Error(`${folder.label}/config.json: ${(e as Error).message}`);
    }
    const tokJson = await readJson(folder, 'tokenizer.json', true);
    const tokCfg = (await readJson(folder, 'tokenizer_config.json', false)) ?? {};
    const tokenizer = TextTokenizer.fromJson(tokJson, tokCfg);
    const base = await openCheckpoint(folder);
    // An audiocraft LM state dict (a fine-tune's lm_final.pt) replaces the base's LM tensors.
    let reader = opts.lmWeights
      ? await withAudiocraftLm(base, opts.lmWeights).catch(async (e: unknown) => {
        await base.close();
        throw e;
      })
      : base;
    // A LoRA adapter is merged into the weights it targets as they are read (on top of replaced LM weights).
    if (opts.adapter) {
      const under = reader;
      reader = await withLoraAdapter(under, opts.adapter, rt).catch(async (e: unknown) => {
        await under.close();
        throw e;
      });
    }
    const names = reader.names();
    let loaded = 0;
    const progressReader = opts.onProgress
      ? new Proxy(reader, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver) as unknown;
          if (prop === 'readRawChunks') {
            return (name: string, chunk: number, scratch?: Uint8Array) => {
              opts.onProgress!(++loaded, names.length, name);
              return target.readRawChunks(name, chunk, scratch);
            };
          }
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      })
      : reader;
    const w = Weights.withDType(progressReader, rt, dtype);
    try {
      const t5 = await T5Encoder.load(w.pp('text_encoder'), cfg.text_encoder);
      const D = cfg.decoder.hidden_size;
      const proj = async (name: string, din: number): Promise<Linear | null> => (w.pp(name).has('weight') ? Linear.load(w.pp(name), din, D, true) : null);
      const textProj = await proj('enc_to_dec_proj', cfg.text_encoder.d_model);
      if (!textProj && cfg.text_encoder.d_model !== D) throw new Error(`${folder.label}: enc_to_dec_proj.weight is missing`);
      const isMelody = cfg.model_type === 'musicgen_melody';
      const chromaProj = isMelody ? await proj('audio_enc_to_dec_proj', cfg.num_chroma ?? 12) : null;
      const encodec = await EncodecModel.load(w.pp('audio_encoder'), cfg.audio_encoder);
      const lm = await MusicgenLM.load(w.pp('decoder'), cfg.decoder, !isMelody, opts.maxGroupBytes);
      const unused = w.unused();
      if (unused.length > 0) {
        // a checkpoint with weights nothing reads is another architecture: say so rather than run it wrong
        throw new Error(`${folder.label}: ${unused.length} tensors were not used, e.g. ${unused.slice(0, 5).join(', ')}`);
      }
      await rt.sync();
      return new MusicgenModel(cfg, tokenizer, t5, textProj, chromaProj, encodec, lm, rt, w.bound(), dtype);
    } finally {
      await reader.close();
    }
  }

  /** T5's last hidden state [B, L, d_text] (before the projection). */
  textHidden(inputIds: Tensor, attentionMask: Tensor): Tensor {
    return this.t5.forward(inputIds, attentionMask);
  }

  /** Projected text states, zeroed where the mask is 0: [B, L, D]. `mask` f32 [B, L]. */
  projectText(hidden: Tensor, mask: Tensor): Tensor {
    return tidy(() => {
      const h = this.textProj ? this.textProj.forward(hidden) : hidden;
      return ops.mul(h, ops.reshape(mask, [...mask.shape, 1]));
    });
  }

  /**
   * Melody models' prefix: [projected chroma repeated (ceil) and cut to chroma_length, projected text].
   * `chroma` f32 [B, frames, 12] one-hots.
   */
  melodyPrefix(chroma: Tensor, text: Tensor): Tensor {
    if (!this.chromaProj) throw new Error('melodyPrefix: not a melody model');
    return tidy(() => {
      let audio = this.chromaProj!.forward(chroma); // B F D
      const F = audio.shape[1];
      const L = this.cfg.chroma_length ?? 235;
      if (F < L) audio = ops.concat(new Array<Tensor>(Math.ceil(L / F)).fill(audio), 1);
      audio = ops.narrow(audio, 1, 0, Math.min(L, audio.shape[1]));
      return ops.concat([audio, text], 1);
    });
  }

  /** The one-hot on chroma bin 0 (the chroma of silence): melody models' unconditional / absent melody. */
  static silentChroma(batch: number, frames = 1, numChroma = 12): Float32Array {
    const c = new Float32Array(batch * frames * numChroma);
    for (let i = 0; i < batch * frames; i++) c[i * numChroma] = 1;
    return c;
  }

  /** Builds the LM's conditioning from text states (and a melody prefix for melody models). */
  conditioning(textStates: Tensor, textMask: Tensor, chroma?: Tensor): Conditioning {
    if (!this.isMelody) return { encoderStates: textStates, encoderMask: textMask };
    const B = textStates.shape[0];
    const c = chroma ?? Tensor.from(MusicgenModel.silentChroma(B), [B, 1, this.cfg.num_chroma ?? 12]);
    return { prefix: this.melodyPrefix(c, textStates) };
  }

  /** Every weight of every network (T5, EnCodec, the LM, the projections). */
  parameters(): Tensor[] {
    return [...this.t5.parameters(), ...this.encodec.parameters(), ...this.lm.parameters(), ...this.projections().flatMap((p) => p.parameters())];
  }

  /** Every tensor the loader bound, under its checkpoint key(s) (folded weight norms are derived, not bound). */
  namedParameters(): NamedTensor[] {
    return this.named;
  }

  /**
   * What fine-tuning trains, with checkpoint names: the LM and the conditioning projections (T5 and EnCodec stay
   * frozen), in the LM's load order then the projections'.
   */
  trainableParameters(): NamedTensor[] {
    if (this.dtype !== 'f32') throw new Error(`fine-tuning needs the model's f32 weights; it was loaded as ${this.dtype} (load it with dtype 'f32')`);
    const proj = new Set(this.projections().flatMap((p) => p.parameters()));
    return [...this.lm.namedParameters(), ...this.named.filter((p) => proj.has(p.tensor))];
  }

  private projections(): Linear[] {
    return [this.textProj, this.chromaProj].filter((p): p is Linear => p !== null);
  }

  dispose(): void {
    for (const t of this.parameters()) t.dispose();
  }
}
