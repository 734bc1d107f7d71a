// Reading a fine-tuning dataset within limits: a tarball is streamed, members that are neither clips nor captions
// are read past without being held, and the decompressed total is capped (a 2.6 MB .tar.gz holding a 1 GiB
// member used to take 3.4 GB of memory). A 24 MiB member, mostly zeros, stands in for the big one (node-tar
// refuses members inflating more than 1000 times on its own, so it holds a random byte every 256).

import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { encodeWav } from '../../src/audio/encode.js';
import { readDataset } from '../../src/train/dataset.js';
import { tones } from '../helpers.js';

const MiB = 2 ** 20;

describe('train: dataset limits', () => {
  let dir: string;
  let archive: string;

  before(async () => {
    dir = await fsp.mkdtemp(join(tmpdir(), 'dataset-limits-'));
    const src = join(dir, 'src');
    await fsp.mkdir(src);
    await fsp.writeFile(join(src, 'a.wav'), encodeWav([tones(0.5, [60])], 32000));
    await fsp.writeFile(join(src, 'a.txt'), 'a calm tone\n');
    await fsp.writeFile(join(src, 'notes.md'), 'not audio');
    const junk = Buffer.alloc(24 * MiB);
    for (let i = 0; i < junk.length; i += 256) junk[i] = (i * 2654435761) >>> 24;
    await fsp.writeFile(join(src, 'junk.bin'), junk);
    archive = join(dir, 'data.tar.gz');
    await tar.c({ cwd: src, file: archive, gzip: true }, ['junk.bin', 'a.wav', 'a.txt', 'notes.md']);
    assert.ok((await fsp.stat(archive)).size < 2 * MiB, 'a small archive');
  });
  after(async () => {
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('a member past the decompressed cap stops the read, naming the limit and how to raise it', async () => {
    await assert.rejects(readDataset(archive, { maxBytes: 8 * MiB, limitName: '--max-dataset-mb' }),
      /data\.tar\.gz: more than 8 MiB of files once decompressed, the limit \(--max-dataset-mb raises it\)/);
    await assert.rejects(readDataset(archive, { maxBytes: 8 * MiB }), /the maxBytes option raises it/);
  });

  it('within the cap: the clips and captions, with other members read past and not held', async () => {
    const held: string[] = [];
    const concat = tar.ReadEntry.prototype.concat;
    tar.ReadEntry.prototype.concat = function (this: tar.ReadEntry) {
      held.push(this.path);
      return concat.call(this);
    } as typeof concat;
    try {
      const items = await readDataset(archive, { maxBytes: 32 * MiB });
      assert.deepEqual(items.map((i) => [i.name, i.caption]), [['a.wav', 'a calm tone']]);
    } finally {
      tar.ReadEntry.prototype.concat = concat;
    }
    assert.deepEqual(held.sort(), ['a.txt', 'a.wav'], 'only clips and captions are buffered');
  });

  it('a folder is capped too; a caption over 1 MiB is refused, not buffered', async () => {
    await assert.rejects(readDataset(join(dir, 'src'), { maxBytes: 1000 }), /more than 0 MiB of files once decompressed/);
    const big = join(dir, 'big');
    await fsp.mkdir(big);
    await fsp.writeFile(join(big, 'b.wav'), encodeWav([tones(0.2, [60])], 32000));
    await fsp.writeFile(join(big, 'b.txt'), '');
    await fsp.truncate(join(big, 'b.txt'), 2 * MiB);
    const bigTar = join(dir, 'big.tar.gz');
    await tar.c({ cwd: big, file: bigTar, gzip: true }, ['b.wav', 'b.txt']);
    await assert.rejects(readDataset(bigTar), /b\.txt is 2097152 bytes; a caption is a short text/);
  });
});
