// EnCodec's chunked decode (for long clips) against the whole-clip decode: the seams must not show.

import { join } from 'node:path';
import { FIXTURES, Fixture, assertClose, gpu } from '../helpers.js';
import { Tensor } from '../../src/tensor.js';
import { Musicgen } from '../../src/model/musicgen.js';
import { dirFolder } from '../../src/io/file-source.js';

describe('EnCodec chunked decode', function () {
  this.timeout(120_000);
  before(() => gpu());

  it('matches the whole-clip decode at every seam (chunks of 7 frames, 16 frames of context)', async () => {
    const model = await Musicgen.load(dirFolder(join(FIXTURES, 'models', 'text-mono')));
    const fx = await Fixture.open('probe/text-mono.inputs.safetensors');
    const codes = await fx.tensor('encodec.codes'); // [K, T]
    const batched = codes.reshape([1, ...codes.shape]);
    const whole = model.encodec.decode(batched);
    const expected = (await whole.read()) as Float32Array;
    for (const [chunk, overlap] of [[7, 16], [50, 16], [13, 8]]) {
      const chunked = await model.encodec.decodeChunked(batched, chunk, overlap);
      assertClose(chunked, expected, `chunks of ${chunk}, overlap ${overlap}`, { rtol: 1e-4, atol: 1e-5 });
    }
    for (const t of [codes, batched, whole] as Tensor[]) t.dispose();
    await fx.file.close();
    model.dispose();
  });
});
