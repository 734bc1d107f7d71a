// `npm run generate -- --prompt TEXT [...]`: the Cog MusicGen predictor on the command line.
// Flags are the predictor's inputs (src/inputs.ts, README); audio files are decoded, resampled and written here.

import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Command } from 'commander';
import { writeFilesAtomic } from '../io/atomic.js';
import { encodeWav, encodeMp3 } from '../audio/encode.js';
import { MusicGen, readRequest, type GenerateRequest, type Progress } from '../pipeline.js';
import { PREDICT_INPUTS } from '../inputs.js';
import { addInputOptions, optionValues, runCli, UsageError } from './inputs.js';
import { cliProgress } from './progress.js';
import cliProgressBars from 'cli-progress';

/** The flags that are not library options (those are read through the table). */
interface Flags {
  model: string;
  lmWeights?: string;
  adapter?: string;
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
    .option('--model <dir|hub-id>', 'model folder in the transformers format, or a hub id', 'facebook/musicgen-melody')
    .option('--lm-weights <file>', 'an audiocraft LM state dict to apply on top of --model (a Cog fine-tune\'s lm_final.pt)')
    .option('--adapter <file|dir>', 'a LoRA adapter to apply to --model in memory (adapter_model.safetensors with adapter_config.json beside it, as finetune --lora-rank writes)');
  const inputs = addInputOptions(program, PREDICT_INPUTS);
  program
    .option('--output <file>', 'output file (default output.wav / output.mp3)')
    .option('--codes-out <file>', 'also write the EnCodec codes as JSON {"codes": [[...], ...]}')
    .option('--cache-dir <dir>', 'where hub downloads are kept (default: the Hugging Face cache)')
    .option('--offline', 'never touch the network; use the cache only')
    .parse(argv);
  const f = program.opts<Flags>();
  const output = f.output ?? `output.${f.format}`;

  // every input is checked (and the audio read) before the model loads
  await checkWritable('--output', output);
  if (f.codesOut) await checkWritable('--codes-out', f.codesOut);
  const req = await readRequest(optionValues(program, inputs) as GenerateRequest);

  const t0 = performance.now();
  const download = cliProgress();
  let model: MusicGen;
  try {
    model = await MusicGen.load(f.model, { cacheDir: f.cacheDir, offline: f.offline, onDownload: download, lmWeights: f.lmWeights, adapter: f.adapter });
  } finally {
    download.stop();
  }
  const loadS = (performance.now() - t0) / 1000;
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
  // the audio and its codes are written together: both files or neither
  const n = result.audio.length;
  for (let i = 0; i < n; i++) {
    const files = [{ path: numbered(output, i, n), data: f.format === 'mp3' ? await encodeMp3(result.audio[i], result.sampleRate) : encodeWav(result.audio[i], result.sampleRate) }];
    if (f.codesOut) {
      const codes = Array.from({ length: result.numCodebooks }, (_, k) => Array.from(result.codes[i].subarray(k * result.frames, (k + 1) * result.frames)));
      files.push({ path: numbered(f.codesOut, i, n), data: new TextEncoder().encode(JSON.stringify({ codes })) });
    }
    await writeFilesAtomic(files);
    console.log(`wrote ${files.map((x) => x.path).join(' and ')} (${(result.audio[i][0].length / result.sampleRate).toFixed(2)} s, ${result.audio[i].length} channel(s), ${result.sampleRate} Hz)`);
  }
  const t = result.timings;
  console.error(`timings: load ${loadS.toFixed(2)} s, text ${t.text_s.toFixed(2)} s, generate ${t.generate_s.toFixed(2)} s (${t.per_step_ms.toFixed(1)} ms/step), decode ${t.decode_s.toFixed(2)} s`);
  model.dispose();
}

/** `musicgen generate` (src/cli/main.ts): runs the command and exits with its status. */
export function run(argv: string[] = process.argv): void {
  runCli('generate', () => main(argv), PREDICT_INPUTS);
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) run();
