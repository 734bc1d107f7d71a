// The library's in-memory `finetune` (src/train/clips.ts; what the browser bundle runs): clips of decoded audio
// with captions (any rate and channel count), LoRA by default, progress per step, AbortSignal, and an adapter file
// that loads with `MusicGen.load(model, { adapter })`. The base model
// is left unchanged. The loop itself is tested against PyTorch in finetune.test.ts / parity.test.ts.

import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MusicGen, type GenerateRequest } from '../../src/pipeline.js';
import { AbortError } from '../../src/model/generate.js';
import { SafetensorsFile, BufferSource } from '../../src/io/safetensors.js';
import { InputError } from '../../src/inputs.js';
import { finetune, DEFAULT_LORA_RANK, type FinetuneProgress } from '../../src/train/clips.js';
import type { TrainingClip } from '../../src/train/data.js';
import { tones } from '../helpers.js';

const TEXT_MODEL = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'weights', 'tiny-musicgen');
const REQ: GenerateRequest = { prompt: 'warm synth arpeggio', duration: 0.4, seed: 5, temperature: 0, normalization: 'none' };

describe('finetune() on clips in memory', function () {
  this.timeout(300_000);
  let mg: MusicGen;
  // 16 kHz stereo and 32 kHz mono: resampled and mixed to the model's 32 kHz mono
  const stereo = tones(0.8, [60, 64, 67], 16000);
  const clips: TrainingClip[] = [
    { name: 'a.wav', caption: 'warm synth arpeggio', audio: [stereo, stereo.map((v) => 0.5 * v)], sampleRate: 16000 },
    { caption: 'bright bells', audio: [tones(0.6, [72, 79], 32000)], sampleRate: 32000 },
  ];

  before(async () => {
    mg = await MusicGen.load(TEXT_MODEL);
  });
  after(() => mg?.dispose());

  it('trains LoRA adapters (loss down), reports each step, returns an adapter that loads (config in its metadata)', async () => {
    const base = await mg.generate(REQ);
    const progress: FinetuneProgress[] = [];
    const r = await finetune(mg, clips, { steps: 4, lr: 2e-2, seed: 3, condDropout: 0, onProgress: (p) => progress.push(p) });
    assert.equal(r.steps, 4);
    assert.equal(r.options.loraRank, DEFAULT_LORA_RANK, 'LoRA by default');
    assert.equal(r.options.epochs, 2, 'two clips, one chunk each: 4 steps are two epochs');
    const train = progress.filter((p): p is Extract<FinetuneProgress, { stage: 'train' }> => p.stage === 'train');
    assert.deepEqual(train.map((p) => p.step), [1, 2, 3, 4]);
    assert.ok(train.every((p) => p.totalSteps === 4 && Number.isFinite(p.loss)));
    assert.deepEqual(progress.filter((p) => p.stage === 'prepare').at(-1), { stage: 'prepare', done: 2, total: 2 });
    assert.deepEqual(r.log.map((l) => l.loss), train.map((p) => p.loss));
    // the same two chunks again: lower loss for both after three updates
    const [l1, l2, l3, l4] = r.log.map((l) => l.loss);
    assert.ok(l3 < l1 && l4 < l2, `losses ${[l1, l2, l3, l4].map((l) => l.toFixed(4)).join(', ')} did not go down`);

    // the adapter file: PEFT names, the config in its metadata
    const file = await SafetensorsFile.open(new BufferSource(r.adapter!.weights), 'adapter');
    assert.ok(file.names().every((n) => /^base_model\.model\.decoder\.model\.decoder\.layers\.\d+\..*\.lora_[AB]\.weight$/.test(n)));
    assert.deepEqual(JSON.parse(file.metadata.adapter_config as string), r.adapter!.config);
    assert.equal(r.adapter!.config.r, DEFAULT_LORA_RANK);
    const someB = await file.readF32(file.names().find((n) => n.endsWith('lora_B.weight'))!);
    assert.ok(someB.some((v) => v !== 0), 'lora_B moved from zero');

    // the base model is unchanged; the adapter loads as the result gives it (the file alone: test/browser/finetune.test.ts)
    const again = await mg.generate(REQ);
    assert.deepEqual(again.codes, base.codes, 'the base model is unchanged by a LoRA run');
    const tuned = await MusicGen.load(TEXT_MODEL, { adapter: r.adapter! });
    try {
      assert.notDeepEqual((await tuned.generate(REQ)).codes, base.codes, 'the tuned model generates something else');
    } finally {
      tuned.dispose();
    }
  });

  it('stops between steps when its signal aborts', async () => {
    const ac = new AbortController();
    const steps: number[] = [];
    await assert.rejects(
      finetune(mg, clips, {
        steps: 10, lr: 1e-3, seed: 1, signal: ac.signal,
        onProgress: (p) => { if (p.stage === 'train') { steps.push(p.step); if (p.step === 2) ac.abort(); } },
      }),
      (e: Error) => e instanceof AbortError,
    );
    assert.deepEqual(steps, [1, 2]);
  });

  it('refuses bad clips and unknown options, naming them', async () => {
    await assert.rejects(finetune(mg, []), (e: Error) => e instanceof InputError && /no clips/.test(e.message));
    await assert.rejects(finetune(mg, [{ caption: 'x', audio: [new Float32Array(0)], sampleRate: 32000 }]), /clip 0 is empty/);
    await assert.rejects(finetune(mg, [{ caption: 'x', audio: [new Float32Array(9), new Float32Array(8)], sampleRate: 32000 }]), /one Float32Array per channel/);
    await assert.rejects(finetune(mg, clips, { stepz: 3 } as object), (e: Error) => e instanceof InputError && /stepz/.test(e.message));
    await assert.rejects(finetune(mg, clips, { steps: 0 }), (e: Error) => e instanceof InputError && /steps/.test(e.message));
  });
});
