// `npm run bench -- --model DIR --seconds S [--json]`: the end-to-end benchmark (the same work as
// tools/bench_torch.py: T5 on a 16-token prompt, S seconds with guidance 3 and top-k 250, EnCodec decode).
// `npm run bench -- --kernels`: kernel throughput beside the machine's measured memory bandwidth.
// `--profile` (with --model): where one decode step's time goes, and EnCodec's decoder layer by layer.
// `npm run bench -- --demucs FILE.th --seconds 30`: HTDemucs separation (src/bench/demucs.ts).
// With --json the last line of stdout is one JSON object; progress goes to stderr.

import { LOAD_INPUTS } from '../inputs.js';
import { addInputOptions, optionValues } from './inputs.js';
import type { WeightDType } from '../quant.js';
import { Command, InvalidArgumentError } from 'commander';
import { cliRuntime } from './gpu.js';
import { BENCH_PROMPT, benchPrompt, loadModel, runPipeline, summarise } from '../bench/pipeline.js';
import { runKernelBench } from '../bench/kernels.js';
import { profileModel } from '../bench/profile.js';
import { deviceName, fmtSpread } from '../bench/util.js';
import { runDemucsBench } from '../bench/demucs.js';

const number = (name: string) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};

interface Flags {
  model?: string;
  demucs?: string;
  seconds: number;
  json?: boolean;
  kernels?: boolean;
  profile?: boolean;
  repeat: number;
  warmup: number;
  seed: number;
  quick?: boolean;
}

export async function main(argv = process.argv): Promise<void> {
  const program = new Command()
    .name('bench')
    .description('Benchmarks: end to end (--model), kernels (--kernels), decode-step profile (--profile)')
    .option('--model <dir>', 'model folder (e.g. /tmp/musicgen-small-random from tools/make_bench_model.py)')
    .option('--seconds <s>', 'seconds of audio to generate', number('--seconds'), 2)
    .option('--repeat <n>', 'timed runs (medians reported, spread beside them)', number('--repeat'), 1)
    .option('--warmup <n>', 'untimed short runs first (pipeline compilation)', number('--warmup'), 1)
    .option('--seed <n>', 'sampling seed', number('--seed'), 0)
    .option('--demucs <file>', 'Demucs package: time the separation of a --seconds long stereo clip')
    .option('--kernels', 'kernel benchmarks (no model needed)')
    .option('--profile', 'with --model: where a decode step and EnCodec decode spend their time')
    .option('--quick', 'fewer iterations (kernels / profile)')
    .option('--json', 'print one JSON object as the last line');
  const load = addInputOptions(program, LOAD_INPUTS);
  program.parse(argv);
  const f = program.opts<Flags>();
  const dtype = optionValues(program, load).dtype as WeightDType | undefined;
  const log = (s: string): void => { process.stderr.write(`${s}\n`); };
  const say = (s: string): void => { if (f.json) log(s); else console.log(s); };
  if (!f.model && !f.kernels && !f.demucs) throw new Error('give --model DIR (end to end / --profile), --demucs FILE.th or --kernels');

  const rt = await cliRuntime();
  const result: Record<string, unknown> = { impl: 'webgpu', device: deviceName(rt) };

  if (f.kernels) {
    const k = await runKernelBench(rt, { quick: !!f.quick, log, say });
    result.kernels = k;
  }

  if (f.demucs) {
    const d = await runDemucsBench(rt, f.demucs, { seconds: f.seconds, repeat: f.repeat, warmup: f.warmup, log: say });
    say(`demucs: ${f.seconds} s in ${fmtSpread(d.separate_s, 2)} s (${d.segments} segments, ${fmtSpread(d.per_segment_s, 2)} s each)`);
    result.demucs = { file: f.demucs, ...d, peak_rss_mb: process.resourceUsage().maxRSS / 1024 };
  }

  if (f.model) {
    const { model, load_s } = await loadModel(f.model, rt, log, dtype);
    result.load_s = load_s;
    result.dtype = model.dtype;
    say(`loaded ${f.model} in ${load_s.toFixed(1)} s on ${deviceName(rt)}`);
    const prompt = await benchPrompt(f.model);
    const nTok = model.tokenizer.encode(prompt).length;
    if (nTok !== 16) log(`warning: the prompt is ${nTok} tokens, not 16`);
    const frames = Math.round(f.seconds * model.frameRate);
    for (let i = 0; i < f.warmup; i++) {
      const w = await runPipeline(model, prompt, Math.min(4, frames), 1000 + i);
      log(`warm-up ${i + 1}/${f.warmup}: text ${w.text_s.toFixed(2)} s, generate ${w.generate_total_s.toFixed(2)} s (${w.steps} steps), decode ${w.encodec_decode_s.toFixed(2)} s`);
    }
    const runs = [];
    for (let r = 0; r < f.repeat; r++) {
      const run = await runPipeline(model, prompt, frames, f.seed + r);
      runs.push(run);
      say(`run ${r + 1}/${f.repeat}: text ${run.text_s.toFixed(3)} s, generate ${run.generate_total_s.toFixed(2)} s `
        + `(${run.per_step_ms.toFixed(1)} ms/step; prefill ${run.prefill_ms.toFixed(0)} ms, steps median ${run.step_ms_median.toFixed(1)} / p90 ${run.step_ms_p90.toFixed(1)} ms; `
        + `${run.dispatches_per_step.toFixed(0)} dispatches/step), EnCodec decode ${run.encodec_decode_s.toFixed(2)} s`);
    }
    const s = summarise(runs);
    if (runs.length > 0) say(`median of ${runs.length}: text ${fmtSpread(s.text_s, 3)} s, generate ${fmtSpread(s.generate_total_s, 2)} s, `
      + `${fmtSpread(s.per_step_ms)} ms/step, EnCodec decode ${fmtSpread(s.encodec_decode_s, 2)} s`);
    if (runs.length > 0) Object.assign(result, {
      model: f.model,
      prompt: prompt === BENCH_PROMPT ? 'BENCH_PROMPT' : prompt,
      prompt_tokens: nTok,
      seconds: f.seconds,
      steps: runs[0].steps,
      text_s: s.text_s.median,
      generate_total_s: s.generate_total_s.median,
      encodec_decode_s: s.encodec_decode_s.median,
      per_step_ms: s.per_step_ms.median,
      dispatches_per_step: runs[0].dispatches_per_step,
      runs,
    });
    // host memory high-water mark (load + runs): the weights in GPU memory count too on lavapipe, where the
    // "GPU" is this process's heap
    result.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
    if (f.profile) result.profile = await profileModel(model, { quick: !!f.quick, log, say, promptDir: f.model });
    model.dispose();
  }
  if (f.json) console.log(JSON.stringify(result));
}

/** `musicgen bench` (src/cli/main.ts): runs the command and exits with its status. */
export function run(argv: string[] = process.argv): void {
  main(argv).then(() => process.exit(0), (e: unknown) => {
    console.error(`bench: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  });
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) run();
