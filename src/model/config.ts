// config.json, parsed rather than cast: every field the networks read is checked for its type and range, and a
// bad one fails here with its path (`decoder.num_attention_heads: 3 does not divide decoder.hidden_size 64`), the
// way candle's serde configs fail, instead of later as a TypeError, a NaN or a shape error deep in a load.
// The layouts are transformers' MusicgenConfig / MusicgenMelodyConfig with their T5Config (`text_encoder`),
// EncodecConfig (`audio_encoder`) and Musicgen(Melody)DecoderConfig (`decoder`). Fields nothing reads (dropout,
// id2label, architectures, …) are ignored; JSON null counts as absent (transformers writes None as null).

import type { T5Config } from './t5.js';
import type { EncodecConfig } from './encodec.js';
import type { DecoderConfig } from './lm.js';

export interface MusicgenConfig {
  model_type: 'musicgen' | 'musicgen_melody';
  text_encoder: T5Config;
  audio_encoder: EncodecConfig;
  decoder: DecoderConfig;
  /** melody models */
  num_chroma?: number;
  chroma_length?: number;
}

type Json = Record<string, unknown>;

/** One JSON object and its path from the root of the file ('' for the root itself). */
class Section {
  constructor(readonly obj: Json, readonly path: string) {}

  /** `json` as the root object (or as the object found at `path`, for a standalone sub-config file). */
  static root(json: unknown, path = ''): Section {
    if (!isObject(json)) throw new Error(`${path || 'config'}: expected an object, got ${describe(json)}`);
    return new Section(json, path);
  }

  at(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  private value(name: string): unknown {
    const v = this.obj[name];
    return v === null ? undefined : v;
  }

  fail(name: string, message: string): never {
    throw new Error(`${this.at(name)}: ${message}`);
  }

  section(name: string): Section {
    const v = this.value(name);
    if (v === undefined) this.fail(name, 'missing');
    if (!isObject(v)) this.fail(name, `expected an object, got ${describe(v)}`);
    return new Section(v, this.at(name));
  }

  optNum(name: string, rule: NumRule = {}): number | undefined {
    const v = this.value(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(name, `expected a number, got ${describe(v)}`);
    if (rule.int && !Number.isInteger(v)) this.fail(name, `must be an integer, got ${v}`);
    if (rule.min !== undefined && v < rule.min) this.fail(name, `must be >= ${rule.min}, got ${v}`);
    if (rule.positive && v <= 0) this.fail(name, 'must be > 0');
    return v;
  }

  num(name: string, rule: NumRule = {}): number {
    const v = this.optNum(name, rule);
    if (v === undefined) this.fail(name, 'missing');
    return v;
  }

  /** A positive integer (sizes, counts). */
  size(name: string): number {
    return this.num(name, { int: true, positive: true });
  }

  optBool(name: string): boolean | undefined {
    const v = this.value(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') this.fail(name, `expected true or false, got ${describe(v)}`);
    return v;
  }

  optChoice<T extends string>(name: string, choices: readonly T[]): T | undefined {
    const v = this.value(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || !(choices as readonly string[]).includes(v)) {
      this.fail(name, `${describe(v)} is not supported (${choices.join(', ')})`);
    }
    return v as T;
  }

  choice<T extends string>(name: string, choices: readonly T[]): T {
    const v = this.optChoice(name, choices);
    if (v === undefined) this.fail(name, 'missing');
    return v;
  }

  /** A non-empty array of numbers, each checked by `rule`. */
  nums(name: string, rule: NumRule = {}): number[] {
    const v = this.value(name);
    if (v === undefined) this.fail(name, 'missing');
    if (!Array.isArray(v) || v.length === 0) this.fail(name, `expected a non-empty array of numbers, got ${describe(v)}`);
    const items = new Section(Object.fromEntries(v.map((x, i) => [String(i), x])) as Json, this.at(name));
    return v.map((_, i) => items.num(String(i), rule));
  }
}

interface NumRule {
  int?: boolean;
  positive?: boolean;
  min?: number;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** `a` heads must split `b` channels evenly (the attention reshapes [B, T, D] to [B, T, H, D / H]). */
function divides(s: Section, heads: string, H: number, width: string, D: number): void {
  if (D % H !== 0) s.fail(heads, `${H} does not divide ${s.at(width)} ${D}`);
}

/** A whole MusicGen or MusicGen-melody config.json (already JSON-parsed). */
export function parseMusicgenConfig(json: unknown): MusicgenConfig {
  const root = Section.root(json);
  const model_type = root.choice('model_type', ['musicgen', 'musicgen_melody'] as const);
  const cfg: MusicgenConfig = {
    model_type,
    text_encoder: t5Config(root.section('text_encoder')),
    audio_encoder: encodecConfig(root.section('audio_encoder')),
    decoder: decoderConfig(root.section('decoder')),
  };
  if (model_type === 'musicgen_melody') {
    cfg.num_chroma = root.optNum('num_chroma', { int: true, positive: true });
    cfg.chroma_length = root.optNum('chroma_length', { int: true, positive: true });
  }
  return cfg;
}

/** T5Config (config.json's `text_encoder`, or a standalone T5 config.json with `path` ''). */
export function parseT5Config(json: unknown, path = 'text_encoder'): T5Config {
  return t5Config(Section.root(json, path));
}

/** EncodecConfig (config.json's `audio_encoder`, or a standalone EnCodec config.json with `path` ''). */
export function parseEncodecConfig(json: unknown, path = 'audio_encoder'): EncodecConfig {
  return encodecConfig(Section.root(json, path));
}

/** Musicgen(Melody)DecoderConfig (config.json's `decoder`). */
export function parseDecoderConfig(json: unknown, path = 'decoder'): DecoderConfig {
  return decoderConfig(Section.root(json, path));
}

function t5Config(s: Section): T5Config {
  const cfg: T5Config = {
    vocab_size: s.size('vocab_size'),
    d_model: s.size('d_model'),
    d_kv: s.size('d_kv'),
    num_heads: s.size('num_heads'),
    num_layers: s.size('num_layers'),
    d_ff: s.size('d_ff'),
    relative_attention_num_buckets: s.size('relative_attention_num_buckets'),
    relative_attention_max_distance: s.size('relative_attention_max_distance'),
    layer_norm_epsilon: s.num('layer_norm_epsilon', { positive: true }),
    // t5-base's relu, and the gated-gelu of t5 v1.1 / flan-t5 (gated-relu is not ported)
    feed_forward_proj: s.choice('feed_forward_proj', ['relu', 'gelu', 'gated-gelu'] as const),
  };
  // the bucketing splits the buckets in two halves (bidirectional), then exact and logarithmic ranges
  if (cfg.relative_attention_num_buckets < 4) s.fail('relative_attention_num_buckets', `must be >= 4, got ${cfg.relative_attention_num_buckets}`);
  return cfg;
}

function encodecConfig(s: Section): EncodecConfig {
  const cfg: EncodecConfig = {
    sampling_rate: s.num('sampling_rate', { int: true, positive: true }),
    audio_channels: s.size('audio_channels'),
    num_filters: s.size('num_filters'),
    num_residual_layers: s.size('num_residual_layers'),
    upsampling_ratios: s.nums('upsampling_ratios', { int: true, positive: true }),
    hidden_size: s.size('hidden_size'),
    kernel_size: s.size('kernel_size'),
    last_kernel_size: s.size('last_kernel_size'),
    residual_kernel_size: s.size('residual_kernel_size'),
    dilation_growth_rate: s.size('dilation_growth_rate'),
    compress: s.size('compress'),
    num_lstm_layers: s.num('num_lstm_layers', { int: true, min: 0 }),
    codebook_size: s.num('codebook_size', { int: true, min: 2 }),
    codebook_dim: s.optNum('codebook_dim', { int: true, positive: true }),
    target_bandwidths: s.nums('target_bandwidths', { positive: true }),
    pad_mode: s.optChoice('pad_mode', ['reflect', 'constant', 'replicate'] as const),
    use_causal_conv: s.optBool('use_causal_conv'),
    trim_right_ratio: s.optNum('trim_right_ratio', { min: 0 }),
    use_conv_shortcut: s.optBool('use_conv_shortcut'),
    norm_type: s.optChoice('norm_type', ['weight_norm', 'time_group_norm'] as const),
    normalize: s.optBool('normalize'),
  };
  if (cfg.normalize) s.fail('normalize', 'true (the 48 kHz model\'s input normalisation) is not supported');
  if (cfg.trim_right_ratio !== undefined && cfg.trim_right_ratio > 1) s.fail('trim_right_ratio', `must be <= 1, got ${cfg.trim_right_ratio}`);
  return cfg;
}

function decoderConfig(s: Section): DecoderConfig {
  const cfg: DecoderConfig = {
    vocab_size: s.size('vocab_size'),
    hidden_size: s.size('hidden_size'),
    num_hidden_layers: s.size('num_hidden_layers'),
    num_attention_heads: s.size('num_attention_heads'),
    ffn_dim: s.size('ffn_dim'),
    num_codebooks: s.size('num_codebooks'),
    pad_token_id: s.num('pad_token_id', { int: true, min: 0 }),
    bos_token_id: s.optNum('bos_token_id', { int: true, min: 0 }),
    audio_channels: s.optNum('audio_channels', { int: true, positive: true }),
    activation_function: s.optChoice('activation_function', ['gelu', 'relu'] as const),
    scale_embedding: s.optBool('scale_embedding'),
    max_position_embeddings: s.optNum('max_position_embeddings', { int: true, positive: true }),
  };
  divides(s, 'num_attention_heads', cfg.num_attention_heads, 'hidden_size', cfg.hidden_size);
  const channels = cfg.audio_channels ?? 1;
  if (channels > 2) s.fail('audio_channels', `must be 1 or 2, got ${channels}`);
  if (cfg.num_codebooks % channels !== 0) s.fail('num_codebooks', `${cfg.num_codebooks} is not a multiple of ${s.at('audio_channels')} ${channels}`);
  // the embedding tables have vocab + 1 rows: the pad id must be one of them
  if (cfg.pad_token_id > cfg.vocab_size) s.fail('pad_token_id', `${cfg.pad_token_id} is outside the ${cfg.vocab_size + 1} rows of the embedding tables`);
  if (cfg.scale_embedding) s.fail('scale_embedding', 'true is not supported (no published MusicGen scales its embeddings)');
  return cfg;
}
