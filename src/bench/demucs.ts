// `npm run bench -- --demucs FILE.th --seconds 30`: HTDemucs separation of a stereo clip, the same work as
// tools/bench_demucs_torch.py (apply_model with split, overlap 0.25, shifts 0) on the same synthetic clip.

import type { Runtime } from '../runtime.js';
import { Demucs } from '../model/demucs.js';
import { now, spread, type Spread } from './util.js';

/** The benchmark clip: three tones per channel, the right channel delayed and quieter (bench_demucs_torch.py). */
export function benchClip(seconds: number, sr: number): Float32Array[] {
  const n = Math.round(seconds * sr);
  const left = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const t = i / sr;
    left[i] = 0.3 * Math.sin(2 * Math.PI * 220 * t) + 0.2 * Math.sin(2 * Math.PI * 330 * t + 1) + 0.1 * Math.sin(2 * Math.PI * 1250 * t + 2);
  }
  const right = new Float32Array(n);
  for (let i = 0; i < n; i++) right[i] = 0.8 * left[(i - 37 + n) % n]!;
  return [left, right];
}

export interface DemucsBenchResult {
  load_s: number;
  seconds: number;
  segments: number;
  separate_s: Spread;
  per_segment_s: Spread;
  runs: number[];
}

export async function runDemucsBench(rt: Runtime, file: string, opts: { seconds: number; repeat: number; warmup: number; log: (s: string) => void }): Promise<DemucsBenchResult> {
  const t0 = now();
  const demucs = await Demucs.load(file, { rt });
  await rt.sync();
  const load_s = (now() - t0) / 1000;
  opts.log(`loaded ${file} in ${load_s.toFixed(1)} s: sources ${demucs.sources.join(', ')}, ${demucs.samplerate} Hz, segment ${demucs.model.segmentLength} samples`);
  try {
    // warm-up on one segment's worth (pipeline compilation)
    for (let i = 0; i < opts.warmup; i++) {
      const w0 = now();
      await demucs.separate(benchClip(demucs.model.segmentLength / demucs.samplerate, demucs.samplerate));
      opts.log(`warm-up ${i + 1}/${opts.warmup}: one segment in ${((now() - w0) / 1000).toFixed(2)} s`);
    }
    const mix = benchClip(opts.seconds, demucs.samplerate);
    const runs: number[] = [];
    const perSegment: number[] = [];
    let segments = 0;
    for (let r = 0; r < opts.repeat; r++) {
      let last = now();
      const r0 = last;
      await demucs.separate(mix, {
        onProgress: (done, total) => {
          const t = now();
          perSegment.push((t - last) / 1000);
          last = t;
          segments = total;
          opts.log(`  segment ${done}/${total}: ${((t - r0) / 1000).toFixed(1)} s`);
        },
      });
      runs.push((now() - r0) / 1000);
      opts.log(`run ${r + 1}/${opts.repeat}: ${opts.seconds} s separated in ${runs[r]!.toFixed(2)} s`);
    }
    return { load_s, seconds: opts.seconds, segments, separate_s: spread(runs), per_segment_s: spread(perSegment), runs };
  } finally {
    demucs.dispose();
  }
}
