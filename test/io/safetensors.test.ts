// Tests for the safetensors reader/writer (format: https://github.com/huggingface/safetensors)
// and its byte sources: memory, local files (positional reads), HTTP Range requests.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  BufferSource,
  SafetensorsCheckpoint,
  SafetensorsFile,
  encodeSafetensors,
  type CheckpointFolder,
  type TensorToWrite,
} from '../../src/io/safetensors.ts';
import { bf16ToF32, f16ToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/dtype.ts';
import { FileSource, openCheckpointDir, openSafetensorsFile } from '../../src/io/file-source.ts';
import { UrlSource, openCheckpointUrl } from '../../src/io/url-source.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const REFERENCE = path.join(here, '..', 'fixtures', 'io', 'reference.safetensors');
// the PyTorch reference environment tools/fixtures/setup-ref.sh makes in the repository (absent in CI: skipped)
const REF_PYTHON = path.join(here, '..', '..', '.venv-ref', 'bin', 'python');

const open = (bytes: Uint8Array, label = 'test.safetensors') => SafetensorsFile.open(new BufferSource(bytes, label), label);

/** A file with an arbitrary (possibly invalid) header and `dataBytes` bytes of data; header length may lie. */
function rawFile(header: unknown, dataBytes: number, declaredHeaderLen?: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(declaredHeaderLen ?? json.length), true);
  out.set(json, 8);
  return out;
}

function headerOf(file: Uint8Array): { len: number; json: Record<string, unknown>; raw: string } {
  const len = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const raw = new TextDecoder().decode(file.subarray(8, 8 + len));
  return { len, json: JSON.parse(raw) as Record<string, unknown>, raw };
}

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.match(e.message, re);
    return true;
  });
}

const sample: Record<string, TensorToWrite> = {
  'b.weight': { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, -2, 0.5, 3.25, -1e-3, 1e30]) },
  'a.ids': { dtype: 'I32', shape: [4], data: new Int32Array([0, -1, 2147483647, -2147483648]) },
  'c.pos': { dtype: 'I64', shape: [2], data: new BigInt64Array([5n, -6n]) },
  'd.half': { dtype: 'F16', shape: [3], data: new Uint16Array([0x3c00, 0xc000, 0x3800]) },
  'e.brain': { dtype: 'BF16', shape: [1, 1], data: new Uint16Array([0x4049]) },
};

describe('safetensors: writer round trip', () => {
  it('writes a valid layout and reads every tensor back', async () => {
    const bytes = encodeSafetensors(sample, { format: 'pt', note: 'ünïcödé' });
    const { len, json, raw } = headerOf(bytes);
    assert.equal(len % 8, 0, 'header length must be a multiple of 8');
    assert.match(raw, /^\{.*\} *$/, 'padding is spaces after the JSON');
    // Sorted, contiguous, no holes.
    const names = Object.keys(json).filter((k) => k !== '__metadata__');
    assert.deepEqual(names, [...names].sort());
    let end = 0;
    for (const n of names) {
      const offs = (json[n] as { data_offsets: [number, number] }).data_offsets;
      assert.equal(offs[0], end);
      end = offs[1];
    }
    assert.equal(bytes.length, 8 + len + end);

    const f = await open(bytes);
    assert.deepEqual(f.names(), names);
    assert.deepEqual(f.metadata, { format: 'pt', note: 'ünïcödé' });
    assert.deepEqual(f.info('b.weight'), { dtype: 'F32', shape: [2, 3], byteLength: 24 });
    assert.ok(f.has('a.ids') && !f.has('__metadata__') && !f.has('nope'));
    assert.deepEqual([...(await f.readF32('b.weight'))], [...sample['b.weight']!.data]);
    assert.deepEqual([...(await f.readI32('a.ids'))], [0, -1, 2147483647, -2147483648]);
    assert.deepEqual([...(await f.readI32('c.pos'))], [5, -6]);
    assert.deepEqual([...(await f.readF32('d.half'))], [1, -2, 0.5]);
    assert.deepEqual([...(await f.readF32('e.brain'))], [3.140625]);
    assert.deepEqual([...(await f.readRaw('d.half'))], [0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38]); // little-endian
  });

  it('writes no __metadata__ when none is given, and handles scalars and empty tensors', async () => {
    const bytes = encodeSafetensors({
      s: { dtype: 'F32', shape: [], data: new Float32Array([7]) },
      z: { dtype: 'F32', shape: [0, 5], data: new Float32Array(0) },
    });
    assert.ok(!('__metadata__' in headerOf(bytes).json));
    const f = await open(bytes);
    assert.deepEqual(f.metadata, {});
    assert.deepEqual([...(await f.readF32('s'))], [7]);
    assert.equal((await f.readF32('z')).length, 0);
  });

  it('refuses data that does not match dtype or shape', () => {
    assert.throws(() => encodeSafetensors({ x: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }), /3 elements but data has 2/);
    assert.throws(() => encodeSafetensors({ x: { dtype: 'I64', shape: [2], data: new Int32Array(2) } }), /needs a BigInt64Array/);
  });

  it('reads from unaligned views of a buffer', async () => {
    const bytes = encodeSafetensors(sample);
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const f = await open(shifted.subarray(1));
    assert.deepEqual([...(await f.readI32('c.pos'))], [5, -6]);
  });
});

describe('safetensors: f16 / bf16 conversion', () => {
  it('decodes f16 exactly: normals, max, subnormals, zeros, inf, nan', () => {
    const cases: Array<[number, number]> = [
      [0x3c00, 1], [0xc000, -2], [0x3800, 0.5], [0x7bff, 65504],
      [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x0400, 2 ** -14], [0x8001, -(2 ** -24)],
      [0x0000, 0], [0x7c00, Infinity], [0xfc00, -Infinity],
    ];
    for (const [bits, v] of cases) assert.equal(f16ToF32(bits), v, `0x${bits.toString(16)}`);
    assert.ok(Object.is(f16ToF32(0x8000), -0));
    assert.ok(Number.isNaN(f16ToF32(0x7e00)) && Number.isNaN(f16ToF32(0xfc01)));
  });

  it('reads an F16 tensor through readF32', async () => {
    const bits = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00, 0xfc00, 0x7e00];
    const f = await open(encodeSafetensors({ h: { dtype: 'F16', shape: [8], data: new Uint16Array(bits) } }));
    const got = await f.readF32('h');
    assert.deepEqual([...got.subarray(0, 7)], [1, -2, 0.5, 65504, 2 ** -24, Infinity, -Infinity]);
    assert.ok(Number.isNaN(got[7]));
  });

  it('encodes f16 with round-to-nearest-even and round-trips all 65536 patterns', () => {
    for (let h = 0; h < 65536; h++) {
      const v = f16ToF32(h);
      const back = f32ToF16Bits(v);
      if (Number.isNaN(v)) assert.ok(Number.isNaN(f16ToF32(back)));
      else assert.equal(back, h, `0x${h.toString(16)}`);
    }
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie -> even
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie -> even (up)
    assert.equal(f32ToF16Bits(65519), 0x7bff);
    assert.equal(f32ToF16Bits(65520), 0x7c00); // tie at max rounds to inf
    assert.equal(f32ToF16Bits(1e6), 0x7c00);
    assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // tie -> even (0)
    assert.equal(f32ToF16Bits(2 ** -25 * 1.5), 0x0001);
    assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002); // tie between 1 and 2 -> 2
    assert.equal(f32ToF16Bits(2 ** -14 - 2 ** -26), 0x0400); // subnormal rounds up into the first normal
    assert.equal(f32ToF16Bits(-0), 0x8000);
  });

  it('decodes and encodes bf16', async () => {
    const cases: Array<[number, number]> = [
      [0x3f80, 1], [0xc000, -2], [0x3f00, 0.5], [0x4049, 3.140625],
      [0x7f80, Infinity], [0xff80, -Infinity], [0x0001, 2 ** -133],
    ];
    for (const [bits, v] of cases) {
      assert.equal(bf16ToF32(bits), v);
      assert.equal(f32ToBf16Bits(v), bits);
    }
    assert.ok(Number.isNaN(bf16ToF32(0x7fc0)) && Number.isNaN(bf16ToF32(f32ToBf16Bits(NaN))));
    assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80); // tie -> even
    assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
    const f = await open(encodeSafetensors({ b: { dtype: 'BF16', shape: [4], data: new Uint16Array([0x3f80, 0xc000, 0x7f80, 0x7fc0]) } }));
    const got = await f.readF32('b');
    assert.deepEqual([...got.subarray(0, 3)], [1, -2, Infinity]);
    assert.ok(Number.isNaN(got[3]));
  });
});

describe('safetensors: integers', () => {
  it('converts I64 to I32 and refuses values out of range', async () => {
    const ok = await open(encodeSafetensors({ i: { dtype: 'I64', shape: [4], data: new BigInt64Array([0n, -1n, 2147483647n, -2147483648n]) } }));
    assert.deepEqual([...(await ok.readI32('i'))], [0, -1, 2147483647, -2147483648]);
    const big = await open(encodeSafetensors({ i: { dtype: 'I64', shape: [3], data: new BigInt64Array([1n, 2n, 2147483648n]) } }));
    await rejects(big.readI32('i'), /tensor "i": element 2 = 2147483648 \(I64\) does not fit in int32/);
    const neg = await open(encodeSafetensors({ i: { dtype: 'I64', shape: [1], data: new BigInt64Array([-2147483649n]) } }));
    await rejects(neg.readI32('i'), /-2147483649/);
  });

  it('reads U8 / BOOL / I8 / I16 written by other tools, and keeps readF32 for floats', async () => {
    const file = rawFile(
      {
        u8: { dtype: 'U8', shape: [2], data_offsets: [0, 2] },
        b: { dtype: 'BOOL', shape: [2], data_offsets: [2, 4] },
        i8: { dtype: 'I8', shape: [2], data_offsets: [4, 6] },
        i16: { dtype: 'I16', shape: [1], data_offsets: [6, 8] },
      },
      8,
    );
    file.set([200, 3, 1, 0, 0xff, 5, 0xfe, 0xff], file.length - 8);
    const f = await open(file);
    assert.deepEqual([...(await f.readI32('u8'))], [200, 3]);
    assert.deepEqual([...(await f.readI32('b'))], [1, 0]);
    assert.deepEqual([...(await f.readI32('i8'))], [-1, 5]);
    assert.deepEqual([...(await f.readI32('i16'))], [-2]);
    await rejects(f.readF32('u8'), /dtype U8; readF32 reads F32, F16, BF16 and F64/);
  });

  it('reads F64 as f32', async () => {
    const file = rawFile({ d: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, 16);
    new DataView(file.buffer).setFloat64(file.length - 16, 0.25, true);
    new DataView(file.buffer).setFloat64(file.length - 8, -3, true);
    assert.deepEqual([...(await (await open(file)).readF32('d'))], [0.25, -3]);
  });
});

describe('safetensors: invalid files', () => {
  const good = () => encodeSafetensors({ 'w.x': { dtype: 'F32', shape: [2, 3], data: new Float32Array(6) } });

  it('reports a file cut short in the data area as truncated, naming the tensor', async () => {
    const b = good();
    await rejects(open(b.subarray(0, b.length - 4), 'cut.safetensors'), /cut\.safetensors: tensor "w\.x": data_offsets \[0, 24\] lie outside the data area \(20 bytes\): the file is truncated/);
  });

  it('reports a header longer than the file', async () => {
    await rejects(open(rawFile({}, 0, 1000)), /header length 1000 is larger than the file \(10 bytes\): the file is truncated or not a safetensors file/);
    await rejects(open(new Uint8Array([1, 2, 3])), /too short.*truncated or not a safetensors file/);
    // A header length near 2^64, as when reading some other format.
    const junk = new TextEncoder().encode('PK\x03\x04 this is a zip file, not safetensors');
    await rejects(open(junk), /larger than the file.*not a safetensors file/);
  });

  it('reports a header that is not JSON', async () => {
    const b = rawFile({}, 0);
    b.set(new TextEncoder().encode('{x'), 8);
    await rejects(open(b), /not valid UTF-8 JSON/);
  });

  it('reports data_offsets that point past the data', async () => {
    const lying = rawFile({ t: { dtype: 'F32', shape: [100], data_offsets: [0, 400] } }, 24);
    await rejects(open(lying), /tensor "t": data_offsets \[0, 400\] lie outside the data area \(24 bytes\): the file is truncated/);
    const backwards = rawFile({ t: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, 24);
    await rejects(open(backwards), /tensor "t": data_offsets \[8, 4\] end before they begin/);
  });

  it('reports a byte count that does not match the shape', async () => {
    const f = rawFile({ t: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 20] } }, 24);
    await rejects(open(f), /tensor "t": header says shape \[2, 3\] of F32 = 24 bytes but data_offsets span 20 bytes/);
  });

  it('reports an unknown dtype with the supported list', async () => {
    const f = rawFile({ t: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, 4);
    await rejects(open(f), /tensor "t" has unknown dtype "F8_E4M3"; supported: .*F32.*F16.*BF16.*I64.*I32/);
  });

  it('reports a missing tensor with similar names', async () => {
    const f = await open(
      encodeSafetensors({
        'model.decoder.layers.0.self_attn.q_proj.weight': { dtype: 'F32', shape: [1], data: new Float32Array(1) },
        'model.decoder.layers.0.self_attn.k_proj.weight': { dtype: 'F32', shape: [1], data: new Float32Array(1) },
        'model.decoder.embed.weight': { dtype: 'F32', shape: [1], data: new Float32Array(1) },
      }),
      'm.safetensors',
    );
    await rejects(
      f.readF32('decoder.layers.0.self_attn.q_proj.weight'),
      /^tensor "decoder\.layers\.0\.self_attn\.q_proj\.weight" not found in m\.safetensors; similar names: model\.decoder\.layers\.0\.self_attn\.q_proj\.weight$/,
    );
    assert.throws(() => f.info('zzz'), /tensor "zzz" not found in m\.safetensors; it has 3 tensors/);
  });
});

describe('safetensors: chunked reads', () => {
  it('yields consecutive pieces that add up to readRaw', async () => {
    const data = Float32Array.from({ length: 1000 }, (_, i) => i);
    const f = await open(encodeSafetensors({ big: { dtype: 'F32', shape: [1000], data } }));
    const sizes: number[] = [];
    const parts: Uint8Array[] = [];
    for await (const c of f.readRawChunks('big', 1024)) {
      sizes.push(c.length);
      parts.push(c);
    }
    assert.deepEqual(sizes, [1024, 1024, 1024, 928]);
    assert.deepEqual(Buffer.concat(parts), Buffer.from(await f.readRaw('big')));
    assert.throws(() => f.readRawChunks('nope', 8), /not found/);
    assert.throws(() => f.readRawChunks('big', 0), /positive integer/);
  });

  it('from a file with a scratch chunk: every chunk is read into it in place (the loader allocates nothing)', async () => {
    const data = Float32Array.from({ length: 1000 }, (_, i) => i * 0.5);
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'st-scratch-'));
    const file = path.join(dir, 'm.safetensors');
    await fsp.writeFile(file, encodeSafetensors({ big: { dtype: 'F32', shape: [1000], data } }));
    const f = await openSafetensorsFile(file);
    try {
      const scratch = new Uint8Array(1024);
      const copies: Uint8Array[] = [];
      for await (const c of f.readRawChunks('big', 1024, scratch)) {
        assert.equal(c.buffer, scratch.buffer, 'a view of the scratch chunk');
        copies.push(c.slice());
      }
      assert.deepEqual(copies.map((c) => c.length), [1024, 1024, 1024, 928]);
      assert.deepEqual(Buffer.concat(copies), Buffer.from(await f.readRaw('big')));
      assert.throws(() => f.readRawChunks('big', 2048, scratch), /scratch of 1024 bytes/);
    } finally {
      await f.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('safetensors: reference file written by Python safetensors', () => {
  it('reads every dtype and the metadata', async function () {
    if (!existsSync(REFERENCE)) this.skip(); // generated by tools/fixtures/io_reference.py
    const f = await openSafetensorsFile(REFERENCE);
    try {
      assert.deepEqual(f.metadata, { format: 'pt', source: 'tools/fixtures/io_reference.py' });
      assert.deepEqual(f.info('f32'), { dtype: 'F32', shape: [2, 3], byteLength: 24 });
      assert.deepEqual([...(await f.readF32('f32'))], [...new Float32Array([1, -2, 0.5, 3.25, -1e-3, 1e30])]);
      const h = await f.readF32('f16');
      assert.deepEqual([...h.subarray(0, 9)], [1, -2, 0.5, 65504, 2 ** -24, 2 ** -14, -0, Infinity, -Infinity]);
      assert.ok(Object.is(h[6], -0) && Number.isNaN(h[9]));
      const b = await f.readF32('bf16');
      assert.deepEqual([...b.subarray(0, 7)], [1, -2, 0.5, 3.140625, 2 ** 100, Infinity, -Infinity]);
      assert.ok(Number.isNaN(b[7]));
      assert.equal(f.info('i64').dtype, 'I64');
      assert.deepEqual([...(await f.readI32('i64'))], [0, 1, -1, 2147483647, -2147483648, 123456]);
      assert.deepEqual([...(await f.readI32('i32'))], [7, -7, 2147483647]);
      assert.deepEqual(f.info('scalar').shape, []);
      assert.deepEqual([...(await f.readF32('scalar'))], [42.5]);
      assert.deepEqual(f.info('empty'), { dtype: 'F32', shape: [0, 4], byteLength: 0 });
      assert.deepEqual([...(await f.readF32('decoder.layers.0.self_attn.q_proj.weight'))], [0, 1, 2, 3, 4, 5, 6, 7]);
    } finally {
      await f.close();
    }
  });

  it('writes files that Python safetensors loads', async function () {
    const skip = (why: string): never => {
      this.test!.title += ` (skipped: ${why}; make it with tools/fixtures/setup-ref.sh)`;
      return this.skip();
    };
    if (!existsSync(REF_PYTHON)) skip('no .venv-ref');
    try {
      execFileSync(REF_PYTHON, ['-c', 'import safetensors, numpy'], { stdio: 'ignore' });
    } catch {
      skip('.venv-ref lacks safetensors or numpy');
    }
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'st-py-'));
    try {
      const file = path.join(dir, 'ours.safetensors');
      await fsp.writeFile(file, encodeSafetensors(sample, { who: 'ts' }));
      const script = [
        'import sys, json, numpy as np',
        'from safetensors import safe_open',
        'out = {}',
        'with safe_open(sys.argv[1], "np") as f:',
        '    out["__metadata__"] = f.metadata()',
        '    for k in f.keys():',
        '        if k != "e.brain": out[k] = f.get_tensor(k).astype(np.float64).tolist()',  // numpy has no bf16
        'print(json.dumps(out))',
      ].join('\n');
      const got = JSON.parse(execFileSync(REF_PYTHON, ['-c', script, file], { encoding: 'utf8' })) as Record<string, unknown>;
      assert.deepEqual(got, {
        __metadata__: { who: 'ts' },
        'a.ids': [0, -1, 2147483647, -2147483648],
        'b.weight': [[...sample['b.weight']!.data.subarray(0, 3)], [...sample['b.weight']!.data.subarray(3)]],
        'c.pos': [5, -6],
        'd.half': [1, -2, 0.5],
      });
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});

/** Writes a two-shard checkpoint (plus index) into a fresh temp dir. */
async function writeShardedDir(): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'st-shards-'));
  const shard1 = encodeSafetensors({
    'enc.w': { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
    'enc.b': { dtype: 'F16', shape: [1], data: new Uint16Array([0x3800]) },
  });
  const shard2 = encodeSafetensors({ 'dec.ids': { dtype: 'I64', shape: [3], data: new BigInt64Array([7n, 8n, 9n]) } });
  await fsp.writeFile(path.join(dir, 'model-00001-of-00002.safetensors'), shard1);
  await fsp.writeFile(path.join(dir, 'model-00002-of-00002.safetensors'), shard2);
  await fsp.writeFile(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({
      metadata: { total_size: 18 },
      weight_map: {
        'enc.w': 'model-00001-of-00002.safetensors',
        'enc.b': 'model-00001-of-00002.safetensors',
        'dec.ids': 'model-00002-of-00002.safetensors',
      },
    }),
  );
  return dir;
}

async function checkSharded(ck: SafetensorsCheckpoint): Promise<void> {
  assert.deepEqual(ck.names().sort(), ['dec.ids', 'enc.b', 'enc.w']);
  assert.deepEqual(ck.metadata, { total_size: 18 });
  assert.deepEqual(ck.info('dec.ids'), { dtype: 'I64', shape: [3], byteLength: 24 });
  assert.ok(ck.has('enc.b') && !ck.has('x'));
  assert.deepEqual([...(await ck.readF32('enc.w'))], [1, 2]);
  assert.deepEqual([...(await ck.readF32('enc.b'))], [0.5]);
  assert.deepEqual([...(await ck.readI32('dec.ids'))], [7, 8, 9]);
  assert.equal((await ck.readRaw('enc.w')).length, 8);
  assert.throws(() => ck.info('dec.idz'), /tensor "dec\.idz" not found in .*model\.safetensors\.index\.json/);
}

describe('safetensors: local files', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await writeShardedDir();
  });
  afterEach(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('FileSource does positional reads', async () => {
    const file = path.join(dir, 'bytes.bin');
    await fsp.writeFile(file, Uint8Array.from({ length: 256 }, (_, i) => i));
    const src = new FileSource(file);
    try {
      assert.equal(await src.size(), 256);
      assert.deepEqual([...(await src.read(250, 6))], [250, 251, 252, 253, 254, 255]);
      assert.deepEqual([...(await src.read(3, 2))], [3, 4]);
      assert.equal((await src.read(7, 0)).length, 0);
      await rejects(src.read(254, 4), /unexpected end of file/);
    } finally {
      await src.close();
    }
    await new FileSource(path.join(dir, 'never-opened')).close(); // nothing to close, no error
  });

  it('opens a sharded checkpoint through its index', async () => {
    const ck = await openCheckpointDir(dir);
    try {
      assert.deepEqual(ck.fileNames, ['model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
      await checkSharded(ck);
    } finally {
      await ck.close();
    }
  });

  it('opens a single model.safetensors, or a file named directly', async () => {
    const single = await fsp.mkdtemp(path.join(os.tmpdir(), 'st-single-'));
    try {
      await fsp.writeFile(path.join(single, 'model.safetensors'), encodeSafetensors(sample, { a: 'b' }));
      const ck = await openCheckpointDir(single);
      assert.deepEqual(ck.names().sort(), Object.keys(sample).sort());
      assert.deepEqual(ck.metadata, { a: 'b' });
      assert.deepEqual([...(await ck.readI32('c.pos'))], [5, -6]);
      await ck.close();
      const direct = await openCheckpointDir(path.join(dir, 'model-00002-of-00002.safetensors'));
      assert.deepEqual(direct.names(), ['dec.ids']);
      await direct.close();
    } finally {
      await fsp.rm(single, { recursive: true, force: true });
    }
  });

  it('says what a folder holds when it has no checkpoint', async () => {
    await fsp.rm(path.join(dir, 'model.safetensors.index.json'));
    await rejects(openCheckpointDir(dir), /no model\.safetensors\.index\.json or model\.safetensors here; the folder holds: model-00001-of-00002\.safetensors, model-00002-of-00002\.safetensors/);
  });

  it('reports an index that names a tensor its shard lacks', async () => {
    const index = path.join(dir, 'model.safetensors.index.json');
    const j = JSON.parse(await fsp.readFile(index, 'utf8')) as { weight_map: Record<string, string> };
    j.weight_map['ghost'] = 'model-00002-of-00002.safetensors';
    await fsp.writeFile(index, JSON.stringify(j));
    await rejects(openCheckpointDir(dir), /weight_map puts tensor "ghost" in model-00002-of-00002\.safetensors, but that shard has no such tensor/);
  });

  it('reports a shard the index names but the folder lacks', async () => {
    await fsp.rm(path.join(dir, 'model-00002-of-00002.safetensors'));
    await rejects(openCheckpointDir(dir), /ENOENT.*model-00002-of-00002\.safetensors/);
  });

  it('works over any folder abstraction (in memory)', async () => {
    const files = new Map<string, Uint8Array>();
    for (const n of await fsp.readdir(dir)) files.set(n, await fsp.readFile(path.join(dir, n)));
    const folder: CheckpointFolder = {
      label: 'mem',
      source: (n) => new BufferSource(files.get(n)!, n),
      readText: async (n) => (files.has(n) ? new TextDecoder().decode(files.get(n)) : null),
    };
    await checkSharded(await SafetensorsCheckpoint.open(folder));
  });
});

interface ServerOptions {
  ranges: boolean;
  head: boolean;
}

/** Serves `dir` on 127.0.0.1, honouring Range (or not), logging each request. */
async function serve(dir: string, opts: ServerOptions): Promise<{ url: string; log: string[]; close(): Promise<void> }> {
  const log: string[] = [];
  const server = http.createServer((req, res) => {
    void (async () => {
      const name = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname.slice(1));
      log.push(`${req.method} ${name} ${req.headers.range ?? ''}`.trim());
      let body: Buffer;
      try {
        body = await fsp.readFile(path.join(dir, name));
      } catch {
        res.writeHead(404).end();
        return;
      }
      if (req.method === 'HEAD') {
        if (!opts.head) res.writeHead(405).end();
        else res.writeHead(200, { 'Content-Length': body.length, 'Accept-Ranges': 'bytes' }).end();
        return;
      }
      const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      if (!opts.ranges || !m) {
        res.writeHead(200, { 'Content-Length': body.length }).end(body);
        return;
      }
      const first = Number(m[1]);
      const last = Math.min(m[2] ? Number(m[2]) : body.length - 1, body.length - 1);
      if (first >= body.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      res
        .writeHead(206, { 'Content-Range': `bytes ${first}-${last}/${body.length}`, 'Content-Length': last - first + 1 })
        .end(body.subarray(first, last + 1));
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    log,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('safetensors: HTTP range reads', () => {
  let dir: string;
  before(async () => {
    dir = await writeShardedDir();
    await fsp.writeFile(path.join(dir, 'model.safetensors'), encodeSafetensors(sample));
  });
  after(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });

  it('UrlSource reads ranges, with the size from HEAD', async () => {
    const srv = await serve(dir, { ranges: true, head: true });
    try {
      const src = new UrlSource(srv.url + 'model.safetensors');
      const size = await src.size();
      assert.equal(size, (await fsp.stat(path.join(dir, 'model.safetensors'))).size);
      const local = await fsp.readFile(path.join(dir, 'model.safetensors'));
      assert.deepEqual(Buffer.from(await src.read(5, 20)), local.subarray(5, 25));
      const f = await SafetensorsFile.open(src);
      assert.deepEqual([...(await f.readF32('b.weight'))], [...sample['b.weight']!.data]);
      // Only ranged GETs: the file was never fetched whole.
      assert.ok(srv.log.every((l) => l.startsWith('HEAD') || / bytes=\d+-\d+$/.test(l)), srv.log.join('\n'));
      assert.equal(srv.log.filter((l) => l.startsWith('HEAD')).length, 1, 'size is asked once');
    } finally {
      await srv.close();
    }
  });

  it('falls back to Content-Range for the size when HEAD is refused', async () => {
    const srv = await serve(dir, { ranges: true, head: false });
    try {
      const src = new UrlSource(srv.url + 'model.safetensors');
      assert.equal(await src.size(), (await fsp.stat(path.join(dir, 'model.safetensors'))).size);
      assert.ok(srv.log.includes('GET model.safetensors bytes=0-0'), srv.log.join('\n'));
    } finally {
      await srv.close();
    }
  });

  it('refuses a server that ignores Range, with a clear error', async () => {
    const srv = await serve(dir, { ranges: false, head: true });
    try {
      await rejects(SafetensorsFile.open(new UrlSource(srv.url + 'model.safetensors')), /ignored the Range header \(answered 200 instead of 206 Partial Content\)/);
      const noHead = await serve(dir, { ranges: false, head: false });
      try {
        await rejects(new UrlSource(noHead.url + 'model.safetensors').size(), /ignored the Range header/);
      } finally {
        await noHead.close();
      }
    } finally {
      await srv.close();
    }
  });

  it('opens checkpoints by URL: sharded index, single file, direct file, or a clear 404', async () => {
    const srv = await serve(dir, { ranges: true, head: true });
    try {
      const ck = await openCheckpointUrl(srv.url);
      try {
        await checkSharded(ck);
      } finally {
        await ck.close();
      }
      const single = await openCheckpointUrl(srv.url + 'model.safetensors');
      assert.deepEqual(single.names().sort(), Object.keys(sample).sort());
      await rejects(new UrlSource(srv.url + 'missing.safetensors').size(), /HTTP 404/);
      await rejects(openCheckpointUrl(srv.url + 'sub/'), /found neither model\.safetensors\.index\.json nor model\.safetensors/);
    } finally {
      await srv.close();
    }
  });
});
