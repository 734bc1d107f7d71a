// `musicgen separate --input FILE --output-dir DIR [--demucs PATH|URL] [--stems vocals,other]`: Demucs stem
// separation (src/separate.ts), one WAV per stem named after it (DIR/vocals.wav, ...), written all or nothing.

import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { writeFilesAtomic } from '../io/atomic.js';
import { encodeWav } from '../audio/encode.js';
import { readInputAudio } from '../pipeline.js';
import { openDemucs, separate, checkStems } from '../separate.js';
import { InputError, SEPARATE_INPUTS } from '../inputs.js';
import { cliRuntime } from './gpu.js';
import { addInputOptions, runCli, UsageError } from './inputs.js';
import { cliProgress, stepProgress } from './progress.js';

interface Flags {
  input: string;
  outputDir: string;
  demucs?: string;
  stems?: string;
  cacheDir?: string;
  offline?: boolean;
}

export async function main(argv = process.argv): Promise<void> {
  const program = new Command()
    .name('separate')
    .description('Separate a clip into stems with Demucs (htdemucs by default) and write one WAV per stem')
    .exitOverride();
  addInputOptions(program, SEPARATE_INPUTS);
  program
    .option('--cache-dir <dir>', 'where the Demucs download is kept (default: torch.hub\'s, $TORCH_HOME/hub/checkpoints)')
    .option('--offline', 'never touch the network; use the cache only')
    .parse(argv);
  const f = program.opts<Flags>();
  const stems = f.stems?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (f.stems !== undefined && stems!.length === 0) throw new InputError('stems', 'names no stem');
  const outStat = await stat(f.outputDir).catch(() => null);
  if (outStat && !outStat.isDirectory()) throw new UsageError(`--output-dir: ${f.outputDir} is not a folder`);

  // the clip is read before the model loads, so a bad file fails fast
  let audio;
  try {
    audio = await readInputAudio(f.input);
  } catch (e) {
    if (e instanceof InputError) throw new UsageError(`--input: ${e.reason}`);
    throw e;
  }
  const download = cliProgress();
  let model;
  try {
    model = await openDemucs(f.demucs, {
      rt: await cliRuntime(), demucsCacheDir: f.cacheDir, offline: f.offline,
      onDemucsDownload: (p) => download({ ...p, fileIndex: 0, files: 1 }),
    });
  } finally {
    download.stop();
  }
  try {
    const wanted = checkStems(stems, model.sources); // an unknown name exits 2 naming the model's stems
    const bar = stepProgress('separating', 'segments');
    const abort = new AbortController();
    process.once('SIGINT', () => abort.abort());
    let result;
    try {
      result = await separate(audio, { demucs: model, stems: wanted, onProgress: (d, t) => bar.update(d, t), signal: abort.signal });
    } finally {
      bar.stop();
    }
    await mkdir(f.outputDir, { recursive: true });
    const files = wanted.map((name) => ({ path: join(f.outputDir, `${name}.wav`), data: encodeWav(result.stems[name], result.sampleRate) }));
    await writeFilesAtomic(files);
    const seconds = (result.stems[wanted[0]][0].length / result.sampleRate).toFixed(2);
    console.log(`wrote ${files.map((x) => x.path).join(', ')} (${seconds} s, ${result.stems[wanted[0]].length} channel(s), ${result.sampleRate} Hz)`);
  } finally {
    model.dispose();
  }
}

/** `musicgen separate` (src/cli/main.ts): runs the command and exits with its status (2 for bad input). */
export function run(argv: string[] = process.argv): void {
  runCli('separate', () => main(argv), SEPARATE_INPUTS);
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) run();
