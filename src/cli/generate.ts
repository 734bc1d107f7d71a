// `npm run generate -- --prompt TEXT [...]`: the Cog MusicGen predictor on the command line.
// Flags mirror the predictor's inputs (README); audio files are decoded, resampled and written here.

import { Command, Option, InvalidArgumentError } from 'commander';
import { writeFileAtomic } from '../io/atomic.js';
import { readAudioFile } from '../audio/file.js';
import { encodeWav, encodeMp3 } from '../audio/encode.js';
import { MusicGen, InputError, type GenerateRequest, type Progress } from '../pipeline.js';
import { cliProgress } from './progress.js';
import cliProgressBars from 'cli-progress';

const number = (name: string) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};
const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

interface Flags {
  model: string;
  lmWeights?: string;
  prompt?: string[];
  inputAudio?: string;
  continuation?: boolean;
  continuationStart: number;
  continuationEnd?: number;
  duration: number;
  topK: number;
  topP: number;
  temperature: number;
  guidance: number;
  seed?: number;
  normalization: 'loudness' | 'clip' | 'peak' | 'rms' | 'none';
  format: 'wav' | 'mp3';
  output?: string;
  codesOut?: string;
  cacheDir?: string;
  offline?: boolean;
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

export async function main(argv = process.argv): Promise<void> {
  const program = new Command()
    .name('generate')
    .description('Generate music from a text prompt, optionally following a melody or continuing a clip (Cog MusicGen inputs)')
    .option('--model <dir|hub-id>', 'model folder in the transformers format, or a hub id', 'facebook/musicgen-melody')
    .option('--lm-weights <file>', 'an audiocraft LM state dict to apply on top of --model (a Cog fine-tune\'s lm_final.pt)')
    .option('--prompt <text>', 'description of the music (repeat for a batch)', collect)
    .option('--input-audio <file>', 'melody to follow, or the clip to continue with --continuation (wav, mp3, flac, ogg)')
    .option('--continuation', 'continue --input-audio instead of following its melody')
    .option('--continuation-start <s>', 'start of the slice of --input-audio (seconds)', number('--continuation-start'), 0)
    .option('--continuation-end <s>', 'end of the slice (seconds; -1 = end of clip)', number('--continuation-end'))
    .option('--duration <s>', 'seconds of output (with continuation, the slice included)', number('--duration'), 8)
    .option('--top-k <k>', 'sample from the k most likely tokens (0 = off)', number('--top-k'), 250)
    .option('--top-p <p>', 'sample from the smallest set holding mass p (0 = off, use top-k)', number('--top-p'), 0)
    .option('--temperature <t>', 'softmax temperature (0 = greedy)', number('--temperature'), 1)
    .option('--guidance <g>', 'classifier-free guidance scale (1 = none)', number('--guidance'), 3)
    .option('--seed <n>', 'random seed (-1 or absent: pick one and print it)', number('--seed'))
    .addOption(new Option('--normalization <strategy>', 'loudness (-14 LUFS), clip, peak, rms or none').choices(['loudness', 'clip', 'peak', 'rms', 'none']).default('loudness'))
    .addOption(new Option('--format <fmt>', 'output format').choices(['wav', 'mp3']).default('wav'))
    .option('--output <file>', 'output file (default output.wav / output.mp3)')
    .option('--codes-out <file>', 'also write the EnCodec codes as JSON {"codes": [[...], ...]}')
    .option('--cache-dir <dir>', 'where hub downloads are kept (default: the Hugging Face cache)')
    .option('--offline', 'never touch the network; use the cache only')
    .parse(argv);
  const f = program.opts<Flags>();
  const output = f.output ?? `output.${f.format}`;

  const t0 = performance.now();
  const download = cliProgress();
  let model: MusicGen;
  try {
    model = await MusicGen.load(f.model, { cacheDir: f.cacheDir, offline: f.offline, onDownload: download, lmWeights: f.lmWeights });
  } finally {
    download.stop();
  }
  const loadS = (performance.now() - t0) / 1000;
  const req: GenerateRequest = {
    prompt: f.prompt,
    continuation: f.continuation ?? false,
    continuationStart: f.continuationStart,
    continuationEnd: f.continuationEnd,
    duration: f.duration,
    topK: f.topK,
    topP: f.topP,
    temperature: f.temperature,
    guidance: f.guidance,
    seed: f.seed,
    normalization: f.normalization,
  };
  if (f.inputAudio) req.inputAudio = await readAudioFile(f.inputAudio);
  const bar = progressBar();
  req.onProgress = bar.onProgress;
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  req.signal = abort.signal;
  let result;
  try {
    result = await model.generate(req);
  } finally {
    bar.stop();
  }
  console.error(`seed ${result.seed}`);
  const n = result.audio.length;
  for (let i = 0; i < n; i++) {
    const bytes = f.format === 'mp3' ? await encodeMp3(result.audio[i], result.sampleRate) : encodeWav(result.audio[i], result.sampleRate);
    const path = numbered(output, i, n);
    await writeFileAtomic(path, bytes);
    console.log(`wrote ${path} (${(result.audio[i][0].length / result.sampleRate).toFixed(2)} s, ${result.audio[i].length} channel(s), ${result.sampleRate} Hz)`);
    if (f.codesOut) {
      const codes = Array.from({ length: result.numCodebooks }, (_, k) => Array.from(result.codes[i].subarray(k * result.frames, (k + 1) * result.frames)));
      await writeFileAtomic(numbered(f.codesOut, i, n), JSON.stringify({ codes }));
    }
  }
  const t = result.timings;
  console.error(`timings: load ${loadS.toFixed(2)} s, text ${t.text_s.toFixed(2)} s, generate ${t.generate_s.toFixed(2)} s (${t.per_step_ms.toFixed(1)} ms/step), decode ${t.decode_s.toFixed(2)} s`);
  model.dispose();
}

/** `musicgen generate` (src/cli/main.ts): runs the command and exits with its status. */
export function run(argv: string[] = process.argv): void {
  main(argv).then(() => process.exit(0), (e: unknown) => {
    const err = e as Error;
    console.error(`generate: ${err.message}`);
    process.exit(err instanceof InputError ? 2 : 1);
  });
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) run();
