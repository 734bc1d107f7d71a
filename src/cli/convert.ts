// `musicgen convert --model SRC --dtype q8 --output DIR`: a model folder whose LM and T5 matrices are stored in
// `dtype`, which `MusicGen.load` (and every command) loads directly, from disk or over HTTP Range in a browser.
//
// Layout (model.safetensors; every other key is copied from SRC byte for byte, EnCodec included):
//   f16  NAME            F16 [rows, cols]
//   q8   NAME            I8  [rows, cols]              int8 values, w ≈ NAME_scale[row] · q
//        NAME_scale      F32 [rows]
//   q4   NAME            U8  [rows, cols / 2]          two 4-bit values a byte, low nibble first, each q + 8
//        NAME_scale      F32 [rows, cols / 32]         w ≈ NAME_scale[row, col / 32] · q
// (src/quant.ts documents the packing.) Matrices that the dtype keeps more precise (src/quant.ts `KEPT`: q8 keeps
// T5 and a few LM matrices in f16, q4 keeps them in q8) are written in that format. config.json gains
// `"quantization": {"dtype": …, "group_size": 32 for q4, "kept": {pattern: dtype}}`; a loader seeing it loads in
// that dtype (each tensor's own dtype says how it is stored, so folders converted with other `kept` load too). The matrices are packed by the same loader the models use (streaming the
// checkpoint in, never the whole model in f32), then read back from the GPU and written out.

import { copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { cliRuntime } from './gpu.js';
import { dirFolder, writeSafetensorsStream, type StreamTensor } from '../io/file-source.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { SINGLE_FILE, type Dtype } from '../io/safetensors.js';
import { resolveModel } from '../io/hub.js';
import { MusicgenModel } from '../model/musicgen.js';
import { SCALE_SUFFIX } from '../model/weights.js';
import { KEPT, Q4_GROUP, WEIGHT_DTYPES, dataWords, scalesPerRow, type WeightDType } from '../quant.js';
import { UsageError, runCli } from './inputs.js';

const STORED: Record<'f16' | 'q8' | 'q4', Dtype> = { f16: 'F16', q8: 'I8', q4: 'U8' };

/** Converts the folder `src` into `out` with matrices in `dtype`. */
export async function convert(src: string, dtype: WeightDType, out: string, log: (s: string) => void = () => {}): Promise<void> {
  const folder = dirFolder(src);
  const rt = await cliRuntime();
  log(`loading ${src} as ${dtype}…`);
  const model = await MusicgenModel.load(folder, { rt, dtype });
  const reader = await openCheckpoint(folder);
  try {
    const tensors: StreamTensor[] = [];
    const packedKeys = new Set<string>();
    for (const named of model.namedParameters()) {
      const m = named.packed;
      if (!m) continue;
      const { data, scales } = await m.read();
      const cols = m.cols;
      const partRows = named.partShape.slice(0, -1).reduce((a, b) => a * b, 1);
      const words = dataWords(m.format, partRows, cols);
      const perRow = scalesPerRow(m.format, cols);
      named.names.forEach((name, i) => {
        packedKeys.add(name);
        const part = data.subarray(i * words, (i + 1) * words);
        const bytes = new Uint8Array(part.buffer, part.byteOffset, part.byteLength).slice();
        const shape = m.format === 'q4' ? [...named.partShape.slice(0, -1), cols / 2] : [...named.partShape];
        tensors.push({ name, dtype: STORED[m.format], shape, bytes: () => [bytes] });
        if (perRow > 0) {
          const s = scales.slice(i * partRows * perRow, (i + 1) * partRows * perRow);
          const sShape = m.format === 'q8' ? named.partShape.slice(0, -1) : [...named.partShape.slice(0, -1), perRow];
          tensors.push({ name: name + SCALE_SUFFIX, dtype: 'F32', shape: sShape, bytes: () => [new Uint8Array(s.buffer)] });
        }
      });
    }
    model.dispose();
    for (const name of reader.names()) {
      if (packedKeys.has(name)) continue;
      const info = reader.info(name);
      tensors.push({ name, dtype: info.dtype, shape: [...info.shape], bytes: () => reader.readRawChunks(name, 8 << 20) });
    }
    await mkdir(out, { recursive: true });
    log(`writing ${tensors.length} tensors (${packedKeys.size} packed as ${dtype})…`);
    await writeSafetensorsStream(join(out, SINGLE_FILE), tensors, { format: 'pt' });
  } finally {
    await reader.close();
  }
  const cfg = JSON.parse(await readFile(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
  const kept = dtype === 'f32' ? [] : KEPT[dtype];
  cfg.quantization = {
    dtype, ...(dtype === 'q4' ? { group_size: Q4_GROUP } : {}), format: 'musicgen-webgpu',
    ...(kept.length > 0 ? { kept: Object.fromEntries(kept) } : {}),
  };
  await writeFile(join(out, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  // the tokenizer and the other small files, as they are (not the source's weights)
  for (const f of await readdir(src)) {
    if (f === 'config.json' || /\.(safetensors|bin)$/.test(f) || f.endsWith('.index.json')) continue;
    if ((await stat(join(src, f))).isFile()) await copyFile(join(src, f), join(out, f));
  }
}

export async function main(argv = process.argv): Promise<void> {
  const program = new Command()
    .name('convert')
    .description('Write a copy of a model folder with its LM and T5 matrices in f16, q8 or q4 (loads directly, see README)')
    .exitOverride()
    .requiredOption('--model <dir|hub-id>', 'model folder in the transformers format, or a hub id')
    .addOption(new Option('--dtype <dtype>', 'weight format of the copy').choices(WEIGHT_DTYPES).makeOptionMandatory())
    .requiredOption('--output <dir>', 'the folder to write')
    .option('--cache-dir <dir>', 'where hub downloads are kept (default: the Hugging Face cache)')
    .option('--offline', 'never touch the network; use the cache only')
    .parse(argv);
  const f = program.opts<{ model: string; dtype: WeightDType; output: string; cacheDir?: string; offline?: boolean }>();
  const src = await resolveModel(f.model, { cacheDir: f.cacheDir, offline: f.offline });
  if (resolve(src) === resolve(f.output)) throw new UsageError('--output: must not be the --model folder');
  const t0 = performance.now();
  await convert(src, f.dtype, f.output, (s) => console.error(s));
  console.log(`wrote ${f.output} (${f.dtype}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** `musicgen convert` (src/cli/main.ts): runs the command and exits with its status. */
export function run(argv: string[] = process.argv): void {
  runCli('convert', () => main(argv), []);
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) run();
