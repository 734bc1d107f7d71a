// `npm run generate -- --prompt TEXT [...]`: the Cog MusicGen predictor on the command line.
// Flags are the predictor's inputs (src/inputs.ts, README); audio files are decoded, resampled and written here.

import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Command } from 'commander';
import { writeFilesAtomic } from '../io/atomic.js';
import { encodeWav, encodeMp3, wavStreamHeader, pcm16Chunk } from '../audio/encode.js';
import { MusicGen, readRequest, type AudioChunk, type GenerateRequest, type GenerateResult, type Progress } from '../pipeline.js';
import { LOAD_INPUTS, PREDICT_INPUTS } from '../inputs.js';
import { MBD_FILE, MBD_REPO } from '../model/mbd.js';
import { addInputOptions, optionValues, runCli, UsageError } from './inputs.js';
import { cliProgress } from './progress.js';
import { limitsFromEnv } from './gpu.js';
import cliProgressBars from 'cli-progress';

/** The flags that are not library options (those are read through the table). */
interface Flags {
  model: string;
  lmWeights?: string;
  adapter?: string;
  mbd?: string;
  format: 'wav' | 'mp3';
  output?: string;
  codesOut?: string;
  cacheDir?: string;
  offline?: boolean;
  stream?: boolean;
  demucs?: string;
}

/** `out.wav` for one prompt; `out-1.wav`, `out-2.wav`, … for several. */
function numbered(path: string, i: number, n: number): string {
  if (n === 1) return path;
  const dot = path.lastIndexOf('.');
  return dot > path.lastIndexOf('/') ? `${path.slice(0, dot)}-${i + 1}${path.slice(dot)}` : `${path}-${i + 1}`;
}

function progressBar(): { onProgress: (p: Progress) => void; stop: () => void } {
  const tty = process.stderr.isTTY;
  const bar = new cliProgressBars.SingleBar({
    format: 'generating |{bar}| {value}/{total} steps | {eta_formatted} left',
    stream: process.stderr,
    noTTYOutput: false,
    hideCursor: true,
  }, cliProgressBars.Presets.shades_classic);
  let started = false;
  let lastLogged = -1;
  return {
    onProgress(p) {
      if (p.stage !== 'generate') return;
      if (tty) {
        if (!started) { bar.start(p.total, 0); started = true; }
        bar.update(Math.floor(p.done));
      } else {
        const pct = Math.floor((100 * p.done) / p.total / 10) * 10;
        if (pct !== lastLogged) { lastLogged = pct; process.stderr.write(`generating: ${Math.floor(p.done)}/${p.total} steps\n`); }
      }
    },
    stop() { if (started) bar.stop(); },
  };
}

/**
 * `--output -`: a WAV stream on stdout, the header first (length unknown) and each chunk's samples as they are
 * decoded, so `… --output - | ffplay -` plays while the rest is generated. Waits for stdout to drain (a slow
 * reader holds chunks back, not the generation); a closed pipe aborts the run.
 */
function stdoutWav(channels: number, sampleRate: number, abort: AbortController): { write: (c: AudioChunk) => Promise<void>; end: () => Promise<void> } {
  const out = process.stdout;
  out.on('error', () => abort.abort()); // EPIPE: the player went away
  const put = (bytes: Uint8Array): Promise<void> => new Promise((res) => { if (out.write(bytes)) res(); else out.once('drain', () => res()); });
  let header: Promise<void> | null = null;
  return {
    async write(c) {
      header ??= put(wavStreamHeader(channels, sampleRate));
      await header;
      if (c.end > c.start) await put(pcm16Chunk(c.audio));
    },
    async end() {
      header ??= put(wavStreamHeader(channels, sampleRate));
      await header;
      await new Promise<void>((res) => out.write('', () => res()));
    },
  };
}

/** `--stream`: one line per chunk on stderr, when it arrived and how far ahead of real time the audio is. */
function chunkTimer(t0: number): (c: AudioChunk) => void {
  let n = 0;
  return (c) => {
    const at = (performance.now() - t0) / 1000;
    const end = c.end / c.sampleRate;
    const head = n === 0 ? ' (first audio)' : '';
    process.stderr.write(`chunk ${n++}: ${(c.start / c.sampleRate).toFixed(2)}-${end.toFixed(2)} s of audio at ${at.toFixed(2)} s${head}, ` +
      `real-time factor so far ${(end / at).toPrecision(3)}${c.final ? ', final' : ''}\n`);
  };
}

/** The folder a file is to be written into must exist (checked before any work, naming the flag). */
async function checkWritable(flag: string, file: string): Promise<void> {
  const dir = dirname(resolve(file));
  const st = await stat(dir).catch(() => null);
  if (!st?.isDirectory()) throw new UsageError(`${flag}: the folder ${dir} does not exist`);
  if ((await stat(file).catch(() => null))?.isDirectory()) throw new UsageError(`${flag}: ${file} is a folder`);
}

export async function main(argv = process.argv): Promise<void> {
  const program = new Command()
    .name('generate')
    .description('Generate music from a text prompt, optionally following a melody or continuing a clip (Cog MusicGen inputs)')
    .exitOverride()
    .option('--model <dir|hub-id|name>', 'model folder in the transformers format, a hub id, or a short name (stereo-melody-large, stereo-large, melody-large, large, melody, small, medium)', 'facebook/musicgen-melody')
    .option('--lm-weights <file>', 'an audiocraft LM state dict to apply on top of --model (a Cog fine-tune\'s lm_final.pt)')
    .option('--adapter <file|dir>', 'a LoRA adapter to apply to --model in memory (adapter_model.safetensors with adapter_config.json beside it, as finetune --lora-rank writes)')
    .option('--mbd <path|url>', `multi-band diffusion weights for --decoder mbd (default: ${MBD_REPO}/${MBD_FILE}, fetched once into the hub cache)`)
    .option('--demucs <path|url>', 'Demucs package for the melody\'s stems (default: htdemucs 955717e8-8726e21a.th, downloaded once into torch.hub\'s cache)');
  const inputs = addInputOptions(program, PREDICT_INPUTS);
  const load = addInputOptions(program, LOAD_INPUTS);
  program
    .option('--output <file>', 'output file (default output.wav / output.mp3); - streams a WAV to stdout as it is generated (raw decoder output, not normalised)')
    .option('--stream', 'decode while generating and print per-chunk timing to stderr (the file is written, normalised, at the end)')
    .option('--codes-out <file>', 'also write the EnCodec codes as JSON {"codes": [[...], ...]}')
    .option('--cache-dir <dir>', 'where hub downloads are kept (default: the Hugging Face cache)')
    .option('--offline', 'never touch the network; use the cache only')
    .parse(argv);
  const f = program.opts<Flags>();
  const output = f.output ?? `output.${f.format}`;
  const toStdout = output === '-';

  // every input is checked (and the audio read) before the model loads
  if (toStdout && f.format !== 'wav') throw new UsageError('--output -: streams WAV only (leave --format at wav)');
  if (!toStdout) await checkWritable('--output', output);
  if (f.codesOut) await checkWritable('--codes-out', f.codesOut);
  const req = await readRequest(optionValues(program, inputs) as GenerateRequest);
  if (toStdout && req.prompt.length > 1) throw new UsageError('--output -: one stream, one prompt (write a batch to files)');

  const t0 = performance.now();
  const download = cliProgress();
  const demucsDownload = cliProgress(); // melody stems: Demucs's weights come on the first generate (once)
  let model: MusicGen;
  try {
    model = await MusicGen.load(f.model, {
      limits: limitsFromEnv(),
      cacheDir: f.cacheDir, offline: f.offline, onDownload: download, lmWeights: f.lmWeights, adapter: f.adapter, mbd: f.mbd, demucs: f.demucs,
      onDemucsDownload: (p) => demucsDownload({ ...p, fileIndex: 0, files: 1 }), ...optionValues(program, load),
    });
  } finally {
    download.stop();
  }
  const loadS = (performance.now() - t0) / 1000;
  const bar = progressBar();
  req.onProgress = bar.onProgress;
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  req.signal = abort.signal;
  const sink = toStdout ? stdoutWav(model.channels, model.sampleRate, abort) : null;
  const timer = f.stream ? chunkTimer(performance.now()) : null;
  if (sink || timer) {
    req.onAudio = async (c) => {
      timer?.(c);
      await sink?.write(c);
    };
  }
  let result;
  try {
    result = await model.generate(req);
  } finally {
    bar.stop();
    demucsDownload.stop();
  }
  await sink?.end();
  console.error(`seed ${result.seed}`);
  // the audio and its codes are written together: both files or neither
  const n = result.audio.length;
  for (let i = 0; i < n; i++) {
    if (toStdout) {
      if (f.codesOut) await writeFilesAtomic([{ path: f.codesOut, data: codesJson(result, i) }]);
      continue;
    }
    const files = [{ path: numbered(output, i, n), data: f.format === 'mp3' ? await encodeMp3(result.audio[i], result.sampleRate) : encodeWav(result.audio[i], result.sampleRate) }];
    if (f.codesOut) files.push({ path: numbered(f.codesOut, i, n), data: codesJson(result, i) });
    await writeFilesAtomic(files);
    console.log(`wrote ${files.map((x) => x.path).join(' and ')} (${(result.audio[i][0].length / result.sampleRate).toFixed(2)} s, ${result.audio[i].length} channel(s), ${result.sampleRate} Hz)`);
  }
  const t = result.timings;
  console.error(`timings: load ${loadS.toFixed(2)} s, text ${t.text_s.toFixed(2)} s, generate ${t.generate_s.toFixed(2)} s (${t.per_step_ms.toFixed(1)} ms/step), decode ${t.decode_s.toFixed(2)} s`);
  model.dispose();
}

/** {"codes": [[...], ...]} of batch row i. */
function codesJson(result: GenerateResult, i: number): Uint8Array {
  const codes = Array.from({ length: result.numCodebooks }, (_, k) => Array.from(result.codes[i].subarray(k * result.frames, (k + 1) * result.frames)));
  return new TextEncoder().encode(JSON.stringify({ codes }));
}

/** `musicgen generate` (src/cli/main.ts): runs the command and exits with its status. */
export function run(argv: string[] = process.argv): void {
  runCli('generate', () => main(argv), PREDICT_INPUTS);
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) run();
