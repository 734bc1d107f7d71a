// src/device.ts in a process of its own: Dawn prints two notes about limits this project never uses
// ("maxDynamic… artificially reduced …") from native code on every adapter request; they are filtered out of
// stderr, and whatever else reaches stderr around them still does.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
const run = promisify(execFile);

describe('device: Dawn\'s limit notes', function () {
  this.timeout(120_000);

  it('a process that requests the GPU writes its own stderr and not the two notes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mg-device-'));
    const script = join(dir, 'request.mts');
    await writeFile(script, [
      `import { requestGpu } from ${JSON.stringify(pathToFileURL(join(ROOT, 'src', 'device.ts')).href)};`,
      "process.stderr.write('before\\n');",
      'const g = await requestGpu();',
      "process.stderr.write(`after: ${g.adapterInfo.vendor}\\n`);",
      'g.device.destroy();',
    ].join('\n'));
    // stderr a pipe, as under `2>&1 | tee log` or a CI runner (Node's own child pipes are sockets, which cannot
    // be reopened: there the notes still show)
    const cmd = `${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(script)} 2>&1 | cat`;
    const { stdout } = await run('/bin/sh', ['-c', cmd], { cwd: ROOT });
    assert.doesNotMatch(stdout, /artificially reduced/);
    assert.match(stdout, /^before\nafter: \S*\n$/);
  });
});
