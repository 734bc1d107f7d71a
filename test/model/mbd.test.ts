// Multi-band diffusion against audiocraft's own modules (tools/fixtures/mbd.py): the package read as
// load_diffusion_models reads it, each U-Net alone, the schedule, the band processor, SplitBands(32), and the
// whole decode (mono, and stereo through the probe) with the same noise on both sides.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FIXTURES, Fixture, assertClose, gpu } from '../helpers.js';
import type { Runtime } from '../../src/runtime.js';
import * as ops from '../../src/ops.js';
import { FileSource, dirFolder } from '../../src/io/file-source.js';
import { MusicgenModel } from '../../src/model/musicgen.js';
import {
  MultiBandDiffusion, SplitBands, defaultStepList, sampleSubsampled, scheduleBetas, type MbdNoise,
} from '../../src/model/mbd.js';
import { probe } from '../../src/cli/probe.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';

const TH = join(FIXTURES, 'mbd', 'tiny.th');

describe('multi-band diffusion (audiocraft parity)', function () {
  this.timeout(300_000);
  let rt: Runtime;
  let mbd: MultiBandDiffusion;
  let parts: Fixture;
  before(async () => {
    rt = await gpu();
    mbd = await MultiBandDiffusion.load(new FileSource(TH), rt);
    parts = await Fixture.open('mbd/parts.safetensors');
  });
  after(() => mbd?.dispose());

  it('reads the package: four band models, their configs (an interpolated value included) and processors', () => {
    assert.equal(mbd.sampleRate, 32000);
    assert.equal(mbd.numModels, 4);
    assert.deepEqual(mbd.bands.map((b) => b.cfg.unet.chin), [1, 1, 1, 1]); // channels: '${dset_channels}'
    assert.deepEqual(mbd.bands.map((b) => [b.cfg.unet.transformer, b.cfg.unet.cross_attention]), [[true, false], [true, true], [true, false], [false, false]]);
    assert.deepEqual(mbd.bands.map((b) => b.processor?.cfg.power_std ?? null), [null, null, 0.4, 0.75]);
    assert.equal(mbd.bands[0].cfg.schedule.beta_exp, 7.5);
  });

  it('each U-Net alone matches DiffusionUnet.forward', async () => {
    for (let d = 0; d < 4; d++) {
      const x = await parts.tensor(`unet.${d}.x`);
      const cond = await parts.tensor(`unet.${d}.cond`);
      const step = (await parts.i32(`unet.${d}.step`))[0];
      const y = mbd.bands[d].unet.forward(x, step, cond);
      assertClose((await y.read()) as Float32Array, await parts.f32(`unet.${d}.y`), `U-Net ${d} at step ${step}`, { rtol: 1e-4, atol: 2e-5 });
      for (const t of [x, cond, y]) t.dispose();
    }
  });

  it('a U-Net whose heads are too wide for the fused attention kernel takes the plain one, to the same result', async () => {
    const unet = mbd.bands[1].unet; // self- and cross-attention
    const x = await parts.tensor('unet.1.x');
    const cond = await parts.tensor('unet.1.cond');
    unet.fusedHeadLimit = 0;
    try {
      const y = unet.forward(x, (await parts.i32('unet.1.step'))[0], cond);
      assertClose((await y.read()) as Float32Array, await parts.f32('unet.1.y'), 'U-Net 1, unfused attention', { rtol: 1e-4, atol: 2e-5 });
      y.dispose();
    } finally {
      unet.fusedHeadLimit = 256;
      x.dispose();
      cond.dispose();
    }
  });

  it('the schedule: betas, and generate_subsampled with a fixed estimator and given noise', async () => {
    const cfg = mbd.bands[0].cfg.schedule;
    assertClose(scheduleBetas(cfg), await parts.f32('schedule.betas'), 'betas', { rtol: 2e-6, atol: 0 });
    const init = await parts.f32('schedule.init');
    const noise = await parts.f32('schedule.noise'); // [S, 1, 1, 400]
    const S = defaultStepList().length;
    assert.equal(noise.length, S * 400);
    const out = await sampleSubsampled(cfg, (x) => ops.scale(x, 0.3), init, [1, 1, 400], rt, (i) => noise.slice(i * 400, (i + 1) * 400));
    // ᾱ of a single step is torch's prod(), a float reduction in the order of its vector units (≈6e-7 relative
    // from the exact product); twenty steps carry that to ~1e-5 here
    assertClose(out, await parts.f32('schedule.out'), 'generate_subsampled', { rtol: 0, atol: 3e-5 });
  });

  it('the band processor (return_sample) and SplitBands(32000, 32)', async () => {
    const x = await parts.f32('processor.x');
    const y = await mbd.bands[2].processor!.returnSample(x, 2, rt);
    assertClose(y, await parts.f32('processor.y'), 'MultiBandProcessor.return_sample', { rtol: 1e-5, atol: 2e-6 });
    const xb = await parts.f32('bands32.x');
    // julius runs these long filters as FFT convolutions, we run them directly: rounding differs by a few 1e-6
    const bands = await new SplitBands(32000, 32).split(xb, 2, rt);
    const want = await parts.f32('bands32.y'); // [32, 2, 1, 3000]
    assert.equal(bands.length, 32);
    bands.forEach((b, i) => assertClose(b, want.subarray(i * 6000, (i + 1) * 6000), `band ${i}`, { rtol: 0, atol: 1.5e-5 }));
  });

  it('decodes mono codes as tokens_to_wav does (bands summed, then re_eq), within 1e-4', async () => {
    const model = await MusicgenModel.load(dirFolder(join(FIXTURES, 'models', 'text-mono')));
    try {
      const inputs = await Fixture.open('mbd/mono.inputs.safetensors');
      const expected = await Fixture.open('mbd/mono.outputs.safetensors');
      const [K, T] = inputs.shape('mbd.codes');
      const [D, S, C, N] = inputs.shape('mbd.noise');
      assert.deepEqual([D, S, C, N], [4, 21, 1, T * 640]);
      const noise = await inputs.f32('mbd.noise');
      const pick: MbdNoise = (d, s, size) => noise.slice((d * S + s) * size, (d * S + s + 1) * size);
      const res = await mbd.decode(model.encodec, await inputs.i32('mbd.codes'), K, T, C, pick);
      assertClose(res.audio, await expected.f32('mbd.audio'), 'mbd.audio', { rtol: 0, atol: 1e-4 });
      assertClose(res.audioEq, await expected.f32('mbd.audio_eq'), 'mbd.audio_eq', { rtol: 0, atol: 1e-4 });
    } finally {
      model.dispose();
    }
  });

  it('probe: a stereo model decodes each channel (mbd.codes, mbd.noise → mbd.audio, mbd.audio_eq)', async () => {
    const inputs = await SafetensorsFile.open(new FileSource(join(FIXTURES, 'mbd', 'stereo.inputs.safetensors')));
    const out = await probe(join(FIXTURES, 'models', 'text-stereo'), inputs, { mbd: TH });
    await inputs.close();
    const expected = await Fixture.open('mbd/stereo.outputs.safetensors');
    for (const name of ['mbd.audio', 'mbd.audio_eq']) {
      assert.deepEqual(out[name].shape, expected.shape(name));
      assertClose(out[name].data as Float32Array, await expected.f32(name), name, { rtol: 0, atol: 1e-4 });
    }
  });

  it('refuses a file that is not a multi-band diffusion package', async () => {
    await assert.rejects(MultiBandDiffusion.load(new FileSource(join(FIXTURES, 'io', 'torch', 'lm_final.pt')), rt), /not a multi-band diffusion package/);
  });
});
