// The models a server offers and the ones it holds on the GPU. `--model DIR|HUB_ID|NAME` serves one model,
// loaded at setup; `--models` offers several under Cog's `model_version` names (`melody-large,small`, or a JSON
// map of name → folder, hub id or {"model", "adapter"}), each loaded on first use by the prediction that asks for
// it (its logs say so). At most `maxLoaded` stay on the GPU: loading another disposes the least recently used
// first. `encode-decode` is a round trip through the EnCodec of another offered model (the first that
// generates, unless the map names one), so it shares that model's copy.

import type { WeightDType } from '../quant.js';
import { MusicGen } from '../pipeline.js';
import { dirFolder } from '../io/file-source.js';
import { resolveModel } from '../io/hub.js';
import { ENCODE_DECODE, MODEL_VERSIONS, modelSource } from '../inputs.js';

export interface ModelSpec {
  /** The model_version name it is offered under. */
  name: string;
  /** A folder, a hub id or a short name (`small`). */
  model: string;
  /** A LoRA adapter applied while it loads. */
  adapter?: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * `--models`: a comma-separated list of Cog's names (`melody-large,small,encode-decode`), or a JSON object
 * mapping names to a folder, a hub id or `{"model": …, "adapter": …}` (`encode-decode` may map to another
 * name). Throws naming what is wrong.
 */
export function parseModels(arg: string): ModelSpec[] {
  const text = arg.trim();
  let specs: ModelSpec[];
  if (text.startsWith('{')) {
    let map: unknown;
    try {
      map = JSON.parse(text);
    } catch (e) {
      throw new Error(`--models: not valid JSON (${(e as Error).message})`);
    }
    if (map === null || typeof map !== 'object' || Array.isArray(map)) throw new Error('--models: the JSON must be an object of name → model');
    specs = Object.entries(map as Record<string, unknown>).map(([name, v]) => {
      if (!NAME.test(name)) throw new Error(`--models: "${name}" is not a usable name (letters, digits, _ . -)`);
      if (typeof v === 'string' && v.trim()) return { name, model: v };
      const o = v as { model?: unknown; adapter?: unknown } | null;
      if (o && typeof o === 'object' && typeof o.model === 'string' && o.model.trim() && (o.adapter === undefined || typeof o.adapter === 'string')) {
        return { name, model: o.model, adapter: o.adapter as string | undefined };
      }
      throw new Error(`--models: "${name}" must map to a folder, a hub id or {"model": …, "adapter": …}`);
    });
  } else {
    const known = Object.keys(MODEL_VERSIONS);
    specs = text.split(',').map((s) => s.trim()).filter(Boolean).map((name) => {
      if (!known.includes(name)) throw new Error(`--models: unknown model "${name}"; the names are ${known.join(', ')} (or give a JSON map of name → folder or hub id)`);
      return { name, model: name };
    });
  }
  if (specs.length === 0) throw new Error('--models: no model named');
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw new Error(`--models: "${s.name}" is named twice`);
    seen.add(s.name);
  }
  return specs;
}

export interface ModelPoolOptions {
  /** Models held on the GPU at once (default 1). */
  maxLoaded?: number;
  cacheDir?: string;
  offline?: boolean;
  /** Multi-band diffusion weights (path or URL) for `multi_band_diffusion: true`; each model loads them on first use. */
  mbd?: string;
  /** How every model's matrices are stored (`MusicGen.load`'s dtype; default: each folder's own, else DEFAULT_DTYPE). */
  dtype?: WeightDType;
  /** Melody models: the Demucs package for the melody's stems (default htdemucs, fetched on first use). */
  demucs?: string;
}

type Log = (line: string) => void;

export class ModelPool {
  /** The model_version choices, the first the default. */
  readonly names: readonly string[];
  /** name → the model it loads (encode-decode: another name's). */
  private readonly specs = new Map<string, ModelSpec>();
  /** Loaded models by spec key (with the name they were loaded under), least recently used first. */
  private readonly loaded = new Map<string, { name: string; mg: MusicGen }>();
  private readonly maxLoaded: number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(specs: readonly ModelSpec[], private readonly opts: ModelPoolOptions = {}) {
    this.maxLoaded = opts.maxLoaded ?? 1;
    if (!Number.isInteger(this.maxLoaded) || this.maxLoaded < 1) throw new Error(`--max-loaded must be a whole number ≥ 1, got ${this.maxLoaded}`);
    this.names = specs.map((s) => s.name);
    const generating = specs.filter((s) => s.name !== ENCODE_DECODE);
    for (const s of specs) {
      if (s.name !== ENCODE_DECODE) {
        this.specs.set(s.name, s);
        continue;
      }
      // encode-decode: a named model's EnCodec, a folder or hub id of its own, or the first generating model's
      const other = s.model === ENCODE_DECODE ? generating[0] : generating.find((g) => g.name === s.model) ?? s;
      if (!other) throw new Error(`--models: ${ENCODE_DECODE} needs a model for its EnCodec: offer one that generates, or map ${ENCODE_DECODE} to a folder or hub id`);
      this.specs.set(s.name, other);
    }
  }

  get defaultName(): string {
    return this.names[0];
  }

  /** What `name` loads (for encode-decode, the model whose EnCodec it uses). */
  spec(name: string): ModelSpec {
    const s = this.specs.get(name);
    if (!s) throw new Error(`no model "${name}" is offered (the choices are ${this.names.join(', ')})`);
    return s;
  }

  /** The model of `name` if it is on the GPU now (nothing is loaded). */
  peek(name: string): MusicGen | null {
    return this.loaded.get(key(this.spec(name)))?.mg ?? null;
  }

  /** The folder of `name`'s model (a hub id is downloaded into the cache if it is not there). */
  dir(name: string, log: Log = () => undefined): Promise<string> {
    let last = 0;
    return resolveModel(modelSource(this.spec(name).model), {
      cacheDir: this.opts.cacheDir, offline: this.opts.offline,
      onProgress: (p) => {
        if (Date.now() - last > 2000 || p.received === p.total) {
          last = Date.now();
          log(`downloading ${p.file}: ${p.received} of ${p.total} bytes`);
        }
      },
    });
  }

  /**
   * The model of `name`, loaded if it is not on the GPU (saying so in `log`), after disposing the least
   * recently used ones beyond `maxLoaded - 1`. One load at a time.
   */
  get(name: string, log: Log): Promise<MusicGen> {
    const run = this.queue.then(() => this.getNow(name, log));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async getNow(name: string, log: Log): Promise<MusicGen> {
    const spec = this.spec(name);
    const k = key(spec);
    const have = this.loaded.get(k);
    if (have) {
      this.loaded.delete(k);
      this.loaded.set(k, have);
      return have.mg;
    }
    const what = spec.model === spec.name ? spec.name : `${spec.name} (${spec.model})`;
    log(`loading model ${what}${spec.adapter ? ` with the adapter ${spec.adapter}` : ''}`);
    // room first: two large models may not fit side by side
    for (const [oldKey, old] of this.loaded) {
      if (this.loaded.size < this.maxLoaded) break;
      this.loaded.delete(oldKey);
      old.mg.dispose();
      log(`disposed model ${old.name} (at most ${this.maxLoaded} loaded)`);
    }
    const t0 = Date.now();
    const dir = await this.dir(name, log);
    let lastPct = -1;
    const mg = await MusicGen.load(dirFolder(dir), {
      dtype: this.opts.dtype,
      adapter: spec.adapter, mbd: this.opts.mbd, demucs: this.opts.demucs, cacheDir: this.opts.cacheDir, offline: this.opts.offline,
      onProgress: (done, total) => {
        const pct = Math.floor((100 * done) / Math.max(1, total) / 10) * 10;
        if (pct !== lastPct || done === total) {
          lastPct = pct;
          log(`uploading weights: ${done} of ${total} tensors`);
        }
      },
    });
    this.loaded.set(k, { name, mg });
    log(`model ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${mg.isMelody ? 'melody' : 'text'} model, ${mg.channels} channel(s), ${mg.sampleRate} Hz`);
    return mg;
  }

  /** Disposes every loaded model (after the load in progress, if any). */
  async dispose(): Promise<void> {
    await this.queue;
    for (const { mg } of this.loaded.values()) mg.dispose();
    this.loaded.clear();
  }
}

/** Models with the same source and adapter are one model on the GPU. */
function key(s: ModelSpec): string {
  return JSON.stringify([s.model, s.adapter ?? null]);
}
