// An audiocraft LM state dict (audiocraft/models/lm.py `LMModel.state_dict()`; what the Cog trainer writes, e.g.
// `lm_final.pt` = {'xp.cfg': the training config, 'model': the state dict}) applied on top of a transformers
// MusicGen checkpoint: every LM tensor of the base is replaced by the file's, under transformers' names, the way
// transformers' convert_musicgen_transformers.py renames them:
//
//   emb.{k}.weight                                  → decoder.model.decoder.embed_tokens.{k}.weight
//   transformer.layers.{i}.self_attn[.mha].in_proj_weight → ….layers.{i}.self_attn.{q,k,v}_proj.weight (rows in 3)
//   transformer.layers.{i}.cross_attention.*        → ….layers.{i}.encoder_attn.*
//   transformer.layers.{i}.linear1/linear2          → ….layers.{i}.fc1/fc2
//   transformer.layers.{i}.norm1/norm_cross/norm2   → ….self_attn_layer_norm/encoder_attn_layer_norm/final_layer_norm
//   out_norm.*                                      → decoder.model.decoder.layer_norm.*
//   linears.{k}.weight                              → decoder.lm_heads.{k}.weight
//   condition_provider.conditioners.description.output_proj.* → enc_to_dec_proj.*
//   condition_provider.conditioners.self_wav.output_proj.*    → audio_enc_to_dec_proj.* (melody models)
//
// A key with no counterpart, or a base LM tensor the file does not cover, is an error naming them: a partial or
// foreign state dict would otherwise run as a silent mix of two models.

import { PyDict, describe } from '../io/pickle.js';
import { TorchFile, type TorchStateDict, type TorchTensor } from '../io/pytorch.js';
import { dtypeSize, toF32, toI32, type ByteSource, type Bytes, type TensorInfo, type TensorReader } from '../io/safetensors.js';
import { OverlayReader } from '../io/overlay.js';

/** Where one of our tensors comes from: a file tensor, or one third of its rows (q, k or v of an in_proj). */
interface Source {
  readonly name: string;
  readonly part?: 0 | 1 | 2;
}

/** The base checkpoint's tensors that an LM state dict replaces. */
const LM_PREFIXES = ['decoder.', 'enc_to_dec_proj.', 'audio_enc_to_dec_proj.'];

/** Buffers of audiocraft's melody conditioner (chroma filter bank, STFT window): derived from the config, not weights. */
const DERIVED = /^condition_provider\.conditioners\.self_wav\.chroma\./;

const DEC = 'decoder.model.decoder.';
const LAYER_PARTS: ReadonlyArray<readonly [string, string]> = [
  ['linear1', 'fc1'], ['linear2', 'fc2'], ['norm1', 'self_attn_layer_norm'], ['norm_cross', 'encoder_attn_layer_norm'],
  ['norm2', 'final_layer_norm'], ['self_attn', 'self_attn'], ['cross_attention', 'encoder_attn'],
];

/** Our name(s) for one audiocraft key, or null when it has none. */
function mapKey(key: string): Array<[string, Source]> | null {
  let m = /^emb\.(\d+)\.weight$/.exec(key);
  if (m) return [[`${DEC}embed_tokens.${m[1]}.weight`, { name: key }]];
  m = /^linears\.(\d+)\.weight$/.exec(key);
  if (m) return [[`decoder.lm_heads.${m[1]}.weight`, { name: key }]];
  m = /^out_norm\.(weight|bias)$/.exec(key);
  if (m) return [[`${DEC}layer_norm.${m[1]}`, { name: key }]];
  m = /^condition_provider\.conditioners\.(description|self_wav)\.output_proj\.(weight|bias)$/.exec(key);
  if (m) return [[`${m[1] === 'description' ? 'enc_to_dec_proj' : 'audio_enc_to_dec_proj'}.${m[2]}`, { name: key }]];
  // `.mha.` appears when audiocraft ran its attention through torch's nn.MultiheadAttention (custom=False).
  m = /^transformer\.layers\.(\d+)\.(\w+)\.(?:mha\.)?(in_proj_weight|out_proj\.weight|weight|bias)$/.exec(key);
  if (!m) return null;
  const [, i, part, param] = m;
  const ours = LAYER_PARTS.find(([a]) => a === part)?.[1];
  if (!ours) return null;
  const isAttn = part === 'self_attn' || part === 'cross_attention';
  const base = `${DEC}layers.${i}.${ours}`;
  if (isAttn && param === 'in_proj_weight') {
    return (['q', 'k', 'v'] as const).map((p, j) => [`${base}.${p}_proj.weight`, { name: key, part: j as 0 | 1 | 2 }]);
  }
  if (isAttn && param === 'out_proj.weight') return [[`${base}.out_proj.weight`, { name: key }]];
  if (!isAttn && (param === 'weight' || param === 'bias')) return [[`${base}.${param}`, { name: key }]];
  return null;
}

/** The state dict inside the file: its "model" entry (the Cog trainer), "best_state" (audiocraft), or the object itself. */
function lmStateDict(file: TorchFile): TorchStateDict {
  const root = file.root;
  if (root instanceof PyDict) {
    for (const key of ['model', 'best_state', undefined]) {
      if (key !== undefined && !(root.get(key) instanceof PyDict)) continue;
      const sd = file.stateDict(key);
      if (sd.names().some((n) => n.startsWith('transformer.layers.'))) return sd;
    }
  }
  throw new Error(`${file.label}: not an audiocraft LM state dict (no transformer.layers.* tensors; the file holds ${describe(root)})`);
}

/** The omegaconf classes of a pickled training config (the Cog trainer's 'xp.cfg'), kept as inert data. */
const inertConfig = (qualname: string) => qualname.startsWith('omegaconf.');

/**
 * `base` with its LM tensors read from the audiocraft LM state dict in `source` (shapes checked against the base;
 * f16/bf16 files are read like any other). Closing the result closes both.
 */
export async function withAudiocraftLm(base: TensorReader, source: ByteSource, label = source.label ?? 'LM weights'): Promise<TensorReader> {
  const file = await TorchFile.open(source, label, { inert: inertConfig });
  try {
    return new AudiocraftLmOverlay(base, lmStateDict(file));
  } catch (e) {
    await file.close();
    throw e;
  }
}

class AudiocraftLmOverlay extends OverlayReader {
  readonly label: string;
  private readonly mapped = new Map<string, Source>();

  constructor(base: TensorReader, private readonly lm: TorchStateDict) {
    super(base);
    this.label = `${base.label} with LM weights from ${lm.label}`;
    const unknown: string[] = [];
    for (const key of lm.names()) {
      if (DERIVED.test(key)) continue;
      const targets = mapKey(key);
      if (!targets || targets.some(([ours]) => !base.has(ours))) {
        unknown.push(targets ? `${key} (→ ${targets.map(([o]) => o).find((o) => !base.has(o))}, which the model lacks)` : key);
        continue;
      }
      for (const [ours, src] of targets) this.mapped.set(ours, src);
    }
    if (unknown.length > 0) {
      throw new Error(`${lm.label}: ${unknown.length} keys match nothing in ${base.label}: ${unknown.slice(0, 5).join(', ')}` +
        `${unknown.length > 5 ? ', …' : ''} (not an audiocraft LM for this model?)`);
    }
    const missing = base.names().filter((n) => LM_PREFIXES.some((p) => n.startsWith(p)) && !this.mapped.has(n) && !n.endsWith('embed_positions.weights'));
    if (missing.length > 0) {
      throw new Error(`${lm.label}: the LM state dict lacks ${missing.length} of the model's LM tensors, e.g. ${missing.slice(0, 5).join(', ')}`);
    }
    for (const [ours, src] of this.mapped) {
      const want = base.info(ours).shape;
      const got = this.info(ours).shape;
      if (want.length !== got.length || want.some((d, i) => d !== got[i])) {
        throw new Error(`${lm.label}: "${src.name}" gives ${ours} shape [${got.join(', ')}], the model has [${want.join(', ')}]`);
      }
    }
  }

  protected covers(name: string): boolean {
    return this.mapped.has(name);
  }

  protected ownInfo(name: string): TensorInfo {
    const src = this.mapped.get(name)!;
    const t: TorchTensor = this.lm.tensor(src.name);
    if (src.part === undefined) return this.lm.info(src.name);
    if (t.shape.length !== 2 || t.shape[0]! % 3 !== 0) throw new Error(`${this.lm.label}: "${src.name}" of shape [${t.shape.join(', ')}] is not three stacked projections`);
    const shape = [t.shape[0]! / 3, t.shape[1]!];
    return { dtype: t.dtype, shape, byteLength: shape[0]! * shape[1]! * dtypeSize(t.dtype) };
  }

  protected async ownRaw(name: string): Promise<Bytes> {
    const src = this.mapped.get(name)!;
    const raw = await this.lm.readRaw(src.name);
    if (src.part === undefined) return raw;
    const n = this.info(name).byteLength; // q, k, v: consecutive thirds of the rows
    return raw.slice(src.part * n, (src.part + 1) * n);
  }

  /** A whole file tensor streams in chunks; a third of an in_proj comes in one piece. */
  override readRawChunks(name: string, chunkBytes: number): AsyncGenerator<Bytes, void, undefined> {
    const src = this.mapped.get(name);
    if (src && src.part === undefined) return this.lm.readRawChunks(src.name, chunkBytes);
    return super.readRawChunks(name, chunkBytes);
  }

  protected async ownF32(name: string): Promise<Float32Array<ArrayBuffer>> {
    return toF32(await this.readRaw(name), this.info(name).dtype, name);
  }

  protected async ownI32(name: string): Promise<Int32Array<ArrayBuffer>> {
    return toI32(await this.readRaw(name), this.info(name).dtype, name);
  }

  protected closeOwn(): Promise<void> {
    return this.lm.close();
  }
}
