// The inputs of each command, written once: for every input its Cog name (the server's), its library option
// (camelCase), its CLI flag, type, default, range, choices and description. The library validates options
// against these tables (errors name the option the caller used), the server renders OpenAPI and validates Cog
// names from them (src/server/schema.ts), and the CLIs build their flags and help from them and map library
// errors back to flags (src/cli/inputs.ts). Imports only the bottom layer (quant.ts's dtype names).
//
// A field without `cog` is not a Cog input (library and CLI only); without `option`, not a library option
// (e.g. `output_format`: the library hands back samples, files are the CLI's and the server's business); without
// `flag`, not on the command line.

import { WEIGHT_DTYPES } from './quant.js';

export type InputType = 'string' | 'integer' | 'number' | 'boolean' | 'file' | 'function';

export interface InputField {
  cog?: string;
  /** Old Cog names still accepted for this input. */
  cogAliases?: readonly string[];
  option?: string;
  /** CLI flag with its argument, e.g. `--top-k <k>`. */
  flag?: string;
  type: InputType;
  default?: string | number | boolean;
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
  /** A value outside the range that means "not given" (Cog's `-1 or None`). */
  unset?: number;
  choices?: readonly string[];
  /** null / absent allowed and meaning "not given" (Python `default=None`). */
  nullable?: boolean;
  required?: boolean;
  /** Texts: the most tokens the model's tokenizer may make of one. */
  maxTokens?: number;
  /** Cog's description (OpenAPI). */
  description: string;
  /** The CLI's help, where it differs from the description. */
  help?: string;
  /** CLI: the flag may be repeated (a batch). */
  repeat?: boolean;
}

/** T5 was trained on at most 512 tokens; longer prompts also outgrow the attention buffers. */
export const MAX_PROMPT_TOKENS = 512;

export const NORMALIZATIONS = ['loudness', 'clip', 'peak', 'rms', 'none'] as const;
export const OUTPUT_FORMATS = ['wav', 'mp3'] as const;
export const DECODERS = ['encodec', 'mbd'] as const;

/**
 * Cog MusicGen's `model_version` choices (replicate/cog-musicgen predict.py: the four current ones first, its
 * default first of all, then the older names) and the hub repositories they name. `encode-decode` names no
 * model: it is the round trip of `input_audio` through EnCodec, with no generation.
 */
export const MODEL_VERSIONS: Readonly<Record<string, string | null>> = {
  'stereo-melody-large': 'facebook/musicgen-stereo-melody-large',
  'stereo-large': 'facebook/musicgen-stereo-large',
  'melody-large': 'facebook/musicgen-melody-large',
  large: 'facebook/musicgen-large',
  melody: 'facebook/musicgen-melody',
  small: 'facebook/musicgen-small',
  medium: 'facebook/musicgen-medium',
  'encode-decode': null,
};
export const ENCODE_DECODE = 'encode-decode';

/** The hub id a short model name stands for (`small` → `facebook/musicgen-small`); anything else unchanged. */
export function modelSource(model: string): string {
  return Object.hasOwn(MODEL_VERSIONS, model) ? MODEL_VERSIONS[model] ?? model : model;
}

/** The predictor's inputs: Cog MusicGen's predict.py, in its order. */
export const PREDICT_INPUTS: readonly InputField[] = [
  {
    // the server's: its choices and default are the models it offers (serve --models), the first the default
    cog: 'model_version', type: 'string', default: 'stereo-melody-large', choices: Object.keys(MODEL_VERSIONS),
    description: "Model to use for generation. If set to 'encode-decode', the audio specified via 'input_audio' will simply be encoded and then decoded.",
  },
  {
    cog: 'prompt', cogAliases: ['description'], option: 'prompt', flag: '--prompt <text>', type: 'string', nullable: true, repeat: true,
    maxTokens: MAX_PROMPT_TOKENS,
    description: 'A description of the music you want to generate.',
    help: 'description of the music (repeat for a batch)',
  },
  {
    cog: 'input_audio', option: 'inputAudio', flag: '--input-audio <file>', type: 'file', nullable: true,
    description: 'An audio file that will influence the generated music. If `continuation` is `True`, the generated music will be a continuation of the audio file. ' +
      "Otherwise, the generated music will mimic the audio file's melody.",
    help: 'melody to follow, or the clip to continue with --continuation (wav, mp3, flac, ogg)',
  },
  {
    cog: 'duration', option: 'duration', flag: '--duration <s>', type: 'number', default: 8, exclusiveMinimum: 0, maximum: 3600,
    description: 'Duration of the generated audio in seconds.',
    help: 'seconds of output (with continuation, the slice included)',
  },
  {
    cog: 'continuation', option: 'continuation', flag: '--continuation', type: 'boolean', default: false,
    description: "If `True`, generated music will continue from `input_audio`. Otherwise, generated music will mimic `input_audio`'s melody.",
    help: 'continue --input-audio instead of following its melody',
  },
  {
    // not a Cog input: the Cog predictor always separates (audiocraft's ChromaStemConditioner), so the server does too
    option: 'melodyStems', flag: '--no-melody-stems', type: 'boolean', default: true,
    description: 'Melody models: take the chroma of the melody\'s vocals + other stems (Demucs htdemucs removes drums and bass first), ' +
      'as audiocraft and the Cog predictor do. When false, the chroma of the whole mix (as transformers).',
    help: 'melody: take the chroma of the whole mix, without removing drums and bass with Demucs first',
  },
  {
    cog: 'continuation_start', option: 'continuationStart', flag: '--continuation-start <s>', type: 'number', default: 0, minimum: 0,
    description: 'Start time of the audio file to use for continuation.',
    help: 'start of the slice of --input-audio (seconds)',
  },
  {
    cog: 'continuation_end', option: 'continuationEnd', flag: '--continuation-end <s>', type: 'number', nullable: true, minimum: 0, unset: -1,
    description: 'End time of the audio file to use for continuation. If -1 or None, will default to the end of the audio clip.',
    help: 'end of the slice (seconds; -1 = end of clip)',
  },
  {
    // Cog's boolean; the library and the CLI name the decoder instead (the server maps true to 'mbd')
    cog: 'multi_band_diffusion', type: 'boolean', default: false,
    description: 'If `True`, the EnCodec tokens will be decoded with MultiBand Diffusion (stereo models: each channel).',
  },
  {
    option: 'decoder', flag: '--decoder <name>', type: 'string', default: 'encodec', choices: DECODERS,
    description: "Audio decoder of the tokens: 'encodec', or 'mbd' (multi-band diffusion: slower, fewer artefacts; its weights load on first use).",
    help: 'encodec, or mbd (multi-band diffusion; weights from --mbd)',
  },
  {
    cog: 'normalization_strategy', option: 'normalization', flag: '--normalization <strategy>', type: 'string', default: 'loudness', choices: NORMALIZATIONS,
    description: 'Strategy for normalizing audio.',
    help: 'loudness (-14 LUFS), clip, peak, rms or none',
  },
  {
    cog: 'top_k', option: 'topK', flag: '--top-k <k>', type: 'integer', default: 250, minimum: 0, maximum: 2 ** 20,
    description: 'Reduces sampling to the k most likely tokens.',
    help: 'sample from the k most likely tokens (0 = off)',
  },
  {
    cog: 'top_p', option: 'topP', flag: '--top-p <p>', type: 'number', default: 0, minimum: 0, maximum: 1,
    description: 'Reduces sampling to tokens with cumulative probability of p. When set to  `0` (default), top_k sampling is used.',
    help: 'sample from the smallest set holding mass p (0 = off, use top-k)',
  },
  {
    cog: 'temperature', option: 'temperature', flag: '--temperature <t>', type: 'number', default: 1, minimum: 0, maximum: 100,
    description: "Controls the 'conservativeness' of the sampling process. Higher temperature means more diversity.",
    help: 'softmax temperature (0 = greedy)',
  },
  {
    cog: 'classifier_free_guidance', option: 'guidance', flag: '--guidance <g>', type: 'number', default: 3, minimum: 0, maximum: 100,
    description: 'Increases the influence of inputs on the output. Higher values produce lower-varience outputs that adhere more closely to inputs.',
    help: 'classifier-free guidance scale (1 = none)',
  },
  {
    cog: 'output_format', flag: '--format <fmt>', type: 'string', default: 'wav', choices: OUTPUT_FORMATS,
    description: 'Output format for generated audio.',
    help: 'output format',
  },
  {
    cog: 'seed', option: 'seed', flag: '--seed <n>', type: 'integer', nullable: true, minimum: 0, maximum: Number.MAX_SAFE_INTEGER, unset: -1,
    description: 'Seed for random number generator. If None or -1, a random seed will be used.',
    help: 'random seed (-1 or absent: pick one and print it)',
  },
  {
    option: 'onAudio', type: 'function', nullable: true,
    description: 'Streaming: called with each chunk of raw (not normalised) decoder audio as soon as it is decoded, during generation.',
  },
];

/** `musicgen separate` and the library's `separate()` (src/separate.ts). */
export const SEPARATE_INPUTS: readonly InputField[] = [
  { flag: '--input <file>', type: 'file', required: true, description: 'The audio file to separate (wav, mp3, flac, ogg).' },
  { flag: '--output-dir <dir>', type: 'string', required: true, description: 'Folder to write one WAV per stem into, named after the stem (created if missing).' },
  {
    option: 'demucs', flag: '--demucs <path|url>', type: 'string',
    description: 'The Demucs package (.th). Default: the published htdemucs (955717e8-8726e21a.th), downloaded once into torch.hub\'s cache.',
  },
  {
    option: 'stems', flag: '--stems <names>', type: 'string',
    description: 'The stems to write, comma-separated (htdemucs: drums, bass, other, vocals). Default: all of them.',
  },
];

/** The trainer's inputs: the old Cog MusicGen trainer's, and the options of src/train/loop.ts. */
export const TRAIN_INPUTS: readonly InputField[] = [
  {
    cog: 'dataset_path', flag: '--dataset <dir|file.tar[.gz]>', type: 'file', required: true,
    description: 'A tarball (.tar, .tar.gz) of audio files (wav, mp3, flac, ogg), each with its caption in a .txt file of the same name. Send it as a data: URI.',
    help: 'audio files (wav, mp3, flac, ogg), each with a caption in a .txt of the same name',
  },
  { option: 'outputDir', flag: '--output <dir>', type: 'string', required: true, description: 'Where the fine-tuned model folder, the log and the checkpoints go.' },
  { cog: 'epochs', option: 'epochs', flag: '--epochs <n>', type: 'integer', default: 5, minimum: 1, maximum: 10000, description: 'Number of passes over the dataset.' },
  {
    // no upper bound: a huge rate is how the tests make a run diverge on purpose
    cog: 'lr', option: 'lr', flag: '--lr <x>', type: 'number', default: 1e-4, exclusiveMinimum: 0,
    description: 'Peak learning rate (AdamW, betas 0.9/0.95, weight decay 0.1).',
  },
  { cog: 'batch_size', option: 'batchSize', flag: '--batch-size <n>', type: 'integer', default: 1, minimum: 1, maximum: 256, description: 'Chunks per micro-batch.' },
  { cog: 'grad_accum', option: 'gradAccum', flag: '--grad-accum <n>', type: 'integer', default: 1, minimum: 1, maximum: 1024, description: 'Micro-batches per optimiser step.' },
  { cog: 'warmup', option: 'warmup', flag: '--warmup <n>', type: 'integer', default: 0, minimum: 0, description: 'Linear learning-rate warmup, in optimiser steps.' },
  { cog: 'schedule', option: 'schedule', flag: '--schedule <s>', type: 'string', default: 'constant', choices: ['constant', 'cosine'], description: 'Learning rate after the warmup.' },
  {
    option: 'saveSteps', flag: '--save-steps <n>', type: 'integer', default: 0, minimum: 0,
    description: 'A checkpoint every n optimiser steps (0: at the end of every epoch).',
  },
  {
    cog: 'cond_dropout', option: 'condDropout', flag: '--cond-dropout <p>', type: 'number', default: 0.2, minimum: 0, maximum: 1,
    description: "Probability of dropping a chunk's text (and melody) conditioning, so that classifier-free guidance keeps working.",
  },
  {
    cog: 'lora_rank', option: 'loraRank', flag: '--lora-rank <r>', type: 'integer', default: 0, minimum: 0, maximum: 1024,
    description: 'Train rank-r LoRA adapters instead of the full weights (0: full fine-tuning of the LM and the conditioning projections).',
  },
  {
    cog: 'lora_alpha', option: 'loraAlpha', flag: '--lora-alpha <a>', type: 'number', nullable: true, exclusiveMinimum: 0,
    description: 'LoRA alpha (scale alpha / rank; default: the rank).',
  },
  {
    cog: 'chunk_seconds', option: 'chunkSeconds', flag: '--chunk-seconds <s>', type: 'number', default: 30, exclusiveMinimum: 0, maximum: 30,
    description: 'Longest training chunk, seconds (clips are cut into chunks of this length).',
  },
  {
    cog: 'seed', option: 'seed', flag: '--seed <n>', type: 'integer', nullable: true, minimum: 0, maximum: 2 ** 31 - 1, unset: -1,
    description: 'Seed of the shuffles, dropout draws and LoRA init. If None or -1, a random seed is used.',
  },
  { option: 'maxGradNorm', type: 'number', default: 1, exclusiveMinimum: 0, description: 'Gradient clipping norm.' },
  // the library's in-memory finetune (src/train/clips.ts; the page's Fine-tune panel)
  { option: 'steps', type: 'integer', minimum: 1, maximum: 1000000, description: 'Stop after this many optimiser steps (default: `epochs` passes over the clips).' },
  {
    option: 'resume', flag: '--resume <dir>', type: 'string',
    description: 'Continue from a checkpoint folder, or from the newest checkpoint-N in an output folder.',
  },
];

/**
 * How a model is loaded (`MusicGen.load`, and the --dtype flag of generate, probe, bench and serve). No default
 * here: a converted folder loads in its own dtype, any other in `DEFAULT_DTYPE` (src/quant.ts).
 */
export const LOAD_INPUTS: readonly InputField[] = [
  {
    option: 'dtype', flag: '--dtype <dtype>', type: 'string', choices: WEIGHT_DTYPES,
    description: 'How the LM\'s and T5\'s matrices are stored: f32, f16, q8 (int8, a scale per row) or q4 (4-bit, a scale per 32); EnCodec stays f32. Default: a converted folder\'s own, else the README\'s default.',
  },
];

// ---------------------------------------------------------------------------------------------------------------
// errors

/**
 * A bad input. `field` is the input's name as the caller gave it (a library option for the library);
 * `reason` says what is wrong, with other inputs it mentions in backticks (`continuationEnd`) so that the CLI
 * and the server can rename them (see `renameInputs`).
 */
export class InputError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`${field}: ${reason}`);
    this.name = 'InputError';
  }
}

/** The reason of an InputError with the inputs it names renamed (library option → flag or Cog name). */
export function renameInputs(reason: string, rename: (option: string) => string | undefined): string {
  return reason.replace(/`([A-Za-z_]\w*)`/g, (all, name: string) => {
    const to = rename(name);
    return to === undefined ? all : `\`${to}\``;
  });
}

/** The field of `table` whose library option is `option`. */
export function byOption(table: readonly InputField[], option: string): InputField | undefined {
  return table.find((f) => f.option === option);
}

/** The field of `table` whose Cog name (or an old name of it) is `name`. */
export function byCog(table: readonly InputField[], name: string): InputField | undefined {
  return table.find((f) => f.cog === name || f.cogAliases?.includes(name));
}

/** `--top-k <k>` → `--top-k`. */
export function flagName(f: InputField): string | undefined {
  return f.flag?.split(/[ =]/)[0];
}

// ---------------------------------------------------------------------------------------------------------------
// checking values (the library's strict rules: no coercion from strings)

/** What the range of a numeric field allows, in words (for errors and help). */
export function describeRange(f: InputField): string {
  const parts: string[] = [];
  if (f.exclusiveMinimum !== undefined) parts.push(`> ${f.exclusiveMinimum}`);
  if (f.minimum !== undefined) parts.push(`≥ ${f.minimum}`);
  if (f.maximum !== undefined) parts.push(`≤ ${f.maximum}`);
  return parts.join(' and ');
}

/**
 * Checks one value against its field; throws an InputError on `name` (the name the caller used). Numbers must
 * be finite (and whole for integers) within the range, or the field's `unset` value; strings one of the choices.
 */
export function checkValue(f: InputField, name: string, v: unknown): void {
  switch (f.type) {
    case 'boolean':
      if (typeof v !== 'boolean') throw new InputError(name, `must be true or false, got ${show(v)}`);
      return;
    case 'integer':
    case 'number': {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new InputError(name, `must be a number, got ${show(v)}`);
      if (f.unset !== undefined && v === f.unset) return;
      if (f.type === 'integer' && !Number.isInteger(v)) throw new InputError(name, `must be a whole number, got ${v}`);
      const low = (f.exclusiveMinimum !== undefined && !(v > f.exclusiveMinimum)) || (f.minimum !== undefined && v < f.minimum);
      if (low || (f.maximum !== undefined && v > f.maximum)) {
        throw new InputError(name, `must be ${describeRange(f)}${f.unset !== undefined ? ` (or ${f.unset})` : ''}, got ${v}`);
      }
      return;
    }
    case 'string':
      if (typeof v !== 'string') throw new InputError(name, `must be text, got ${show(v)}`);
      if (f.choices && !f.choices.includes(v)) throw new InputError(name, `must be one of ${f.choices.join(', ')}; got ${show(v)}`);
      return;
    case 'file':
      return; // the library reads files itself (pipeline.ts); the server and the CLI check theirs
    case 'function':
      if (typeof v !== 'function') throw new InputError(name, `must be a function, got ${show(v)}`);
      return;
  }
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null || typeof v !== 'object') return String(v);
  return Array.isArray(v) ? 'an array' : 'an object';
}

/**
 * Checks an options object against `table` by library option names: every key must be an option of the table
 * (or one of `extra`, which are not checked), and every value given valid. Unknown keys are errors that name
 * the option meant where it can be guessed (a Cog name, a CLI flag, or a typo).
 */
export function checkOptions(table: readonly InputField[], opts: object, extra: readonly string[] = []): void {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) throw new InputError('options', `must be an object, got ${show(opts)}`);
  for (const [key, value] of Object.entries(opts)) {
    const f = byOption(table, key);
    if (!f) {
      if (extra.includes(key)) continue;
      throw new InputError(key, unknownOption(table, key, extra));
    }
    if (value === undefined || (value === null && f.nullable)) continue;
    if (f.type === 'file') continue;
    if (f.repeat && Array.isArray(value)) for (const v of value) checkValue(f, key, v);
    else checkValue(f, key, value);
  }
}

/** "unknown option; did you mean `topK`?" for `top_k`, `--top-k`, `topk`, `tpoK`; else the known options. */
export function unknownOption(table: readonly InputField[], key: string, extra: readonly string[] = []): string {
  const options = [...table.flatMap((f) => (f.option ? [f.option] : [])), ...extra];
  const squash = (s: string): string => s.replace(/^-+/, '').replace(/[-_]/g, '').toLowerCase();
  // a Cog name or a flag of a library option, or the same letters in another case or separators
  const named = table.find((f) => f.option && (f.cog === key || f.cogAliases?.includes(key) || flagName(f) === key || flagName(f) === `--${key}`));
  let meant = named?.option ?? options.find((o) => squash(o) === squash(key));
  if (!meant) {
    let best = Infinity;
    for (const o of options) {
      const d = editDistance(squash(key), squash(o));
      if (d < best && d <= Math.max(1, Math.floor(o.length / 4))) { best = d; meant = o; }
    }
  }
  return meant ? `unknown option; did you mean \`${meant}\`?` : `unknown option; the options are ${options.join(', ')}`;
}

/** Levenshtein distance (with adjacent transpositions counted as one edit). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The table's default of a library option (typed by the caller, who knows the field). */
export function defaultOf<T extends string | number | boolean>(table: readonly InputField[], option: string): T {
  const f = byOption(table, option);
  if (!f || f.default === undefined) throw new Error(`inputs: ${option} has no default`);
  return f.default as T;
}
