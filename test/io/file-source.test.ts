// Local model files: anything but a regular file is refused at once (a FIFO as model.safetensors or config.json
// used to hang the load, waiting for a writer).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dirFolder, openCheckpointDir, openSafetensorsFile } from '../../src/io/file-source.js';

describe('io: local files', function () {
  this.timeout(20_000); // a hang (the bug) fails on this rather than the suite's two minutes
  let dir: string;

  before(async function () {
    if (process.platform === 'win32') this.skip();
    dir = await fsp.mkdtemp(join(tmpdir(), 'file-source-'));
    execFileSync('mkfifo', [join(dir, 'model.safetensors'), join(dir, 'config.json')]);
  });
  after(async () => {
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('a FIFO as model.safetensors or config.json is refused, naming it', async () => {
    await assert.rejects(openCheckpointDir(dir), /model\.safetensors: a FIFO \(named pipe\), not a regular file/);
    await assert.rejects(openSafetensorsFile(join(dir, 'model.safetensors')), /a FIFO/);
    await assert.rejects(dirFolder(dir).readText('config.json'), /config\.json: a FIFO \(named pipe\), not a regular file/);
  });

  it('a folder where a file belongs is refused; a missing file is still null; regular files read', async () => {
    await fsp.mkdir(join(dir, 'tokenizer.json'));
    await assert.rejects(dirFolder(dir).readText('tokenizer.json'), /tokenizer\.json: a folder, not a regular file/);
    assert.equal(await dirFolder(dir).readText('missing.json'), null);
    await fsp.writeFile(join(dir, 'generation_config.json'), '{"a":1}');
    assert.equal(await dirFolder(dir).readText('generation_config.json'), '{"a":1}');
  });
});
