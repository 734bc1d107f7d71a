// The CLI's download progress display (src/cli/progress.ts): a line per file on a pipe, a bar on a terminal.

import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';

import { cliProgress } from '../../src/cli/progress.js';

describe('cli: download progress', () => {
  it('cliProgress prints a line per file off a terminal and draws a bar on one', () => {
    const lines: string[] = [];
    const pipe = Object.assign(new PassThrough(), { isTTY: false });
    pipe.on('data', (d: Buffer) => lines.push(d.toString()));
    const plain = cliProgress(pipe);
    plain({ file: 'config.json', received: 0, total: 10, fileIndex: 0, files: 2 });
    plain({ file: 'config.json', received: 10, total: 10, fileIndex: 0, files: 2 });
    plain({ file: 'config.json', received: 10, total: 10, fileIndex: 0, files: 2 });
    plain({ file: 'model.safetensors', received: 2048, total: 2048, fileIndex: 1, files: 2 });
    plain.stop();
    assert.equal(lines.join(''), '[1/2] config.json 10 B\n[2/2] model.safetensors 2.00 kB\n');

    let out = '';
    const tty = Object.assign(new PassThrough(), { isTTY: true, columns: 120 });
    tty.on('data', (d: Buffer) => (out += d.toString()));
    const bar = cliProgress(tty);
    bar({ file: 'model.safetensors', received: 0, total: 4096, fileIndex: 0, files: 1 });
    bar({ file: 'model.safetensors', received: 4096, total: 4096, fileIndex: 0, files: 1 });
    bar.stop();
    assert.match(out, /\[1\/1\] model\.safetensors .*100% 4\.00 kB\/4\.00 kB/);
  });
});
