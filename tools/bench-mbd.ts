// Multi-band diffusion speed, our side (BENCHMARKS.md "Multi-band diffusion"); tools/bench_mbd.py writes the package
// (one full-size band model) and times PyTorch on the same work: one U-Net pass over a clip, one band processor,
// one re_eq; the decode estimate is 80 · pass + 4 · processor + re_eq.
//
//   node --import tsx tools/bench-mbd.ts --mbd /tmp/mbd-full.th --seconds 8 [--passes 1]

import { parseArgs } from 'node:util';
import { initRuntime } from '../src/runtime.js';
import { Tensor } from '../src/tensor.js';
import { FileSource } from '../src/io/file-source.js';
import { MultiBandDiffusion, reEq } from '../src/model/mbd.js';

const { values } = parseArgs({ options: { mbd: { type: 'string' }, seconds: { type: 'string', default: '8' }, passes: { type: 'string', default: '1' } } });
if (!values.mbd) throw new Error('--mbd FILE.th is required');
const seconds = Number(values.seconds);
const passes = Number(values.passes);
const rt = await initRuntime();
let t0 = performance.now();
const mbd = await MultiBandDiffusion.load(new FileSource(values.mbd), rt);
console.error(`loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const band = mbd.bands[0];
const N = Math.floor((seconds * 32000) / 640) * 640;
const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
const x = Tensor.from(rand(N), [1, 1, N], 'f32', rt);
const cond = Tensor.from(rand(128 * (N / 640)), [1, 128, N / 640], 'f32', rt);
// one short pass first: pipeline compilation is not part of a decode's cost
(await band.unet.forward(Tensor.from(rand(6400), [1, 1, 6400], 'f32', rt), 500, Tensor.from(rand(1280), [1, 128, 10], 'f32', rt)).read());
const times: number[] = [];
for (let i = 0; i < passes; i++) {
  t0 = performance.now();
  const y = band.unet.forward(x, 500, cond);
  await y.read();
  y.dispose();
  times.push((performance.now() - t0) / 1000);
}
const pass = times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
t0 = performance.now();
await band.processor!.returnSample(rand(N), 1, rt);
const proc = (performance.now() - t0) / 1000;
t0 = performance.now();
await reEq(rand(N), rand(N), 1, 32000, rt);
const req = (performance.now() - t0) / 1000;
const params = band.unet.parameters().reduce((a, t) => a + t.size, 0);
console.log(`ours (WebGPU): U-Net of ${(params / 1e6).toFixed(0)}M parameters, one pass over ${seconds} s: ${pass.toFixed(2)} s; ` +
  `processor ${proc.toFixed(2)} s; re_eq ${req.toFixed(2)} s; MBD decode estimate ${(80 * pass + 4 * proc + req).toFixed(0)} s`);
console.log(JSON.stringify({ side: 'ours', seconds, unet_pass_s: pass, processor_s: proc, re_eq_s: req, decode_estimate_s: 80 * pass + 4 * proc + req, passes: times }));
mbd.dispose();
process.exit(0);
