// The PyTorch checkpoint reader against files written by torch.save (tools/fixtures/pytorch_reader.py): both
// formats, every dtype a state dict uses, views and shared storages, plain pickles of every protocol, a Demucs-like
// package, and pickles that would run code, which must be refused.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FIXTURES } from '../helpers.js';
import { BufferSource, SafetensorsFile } from '../../src/io/safetensors.js';
import { FileSource } from '../../src/io/file-source.js';
import { PyDict, PyFraction, PyGlobal, PyObject, UnpicklingError, isTuple, unpickle, type PickleValue } from '../../src/io/pickle.js';
import { TorchFile, TorchTensor, openTorchStateDict } from '../../src/io/pytorch.js';

const DIR = join(FIXTURES, 'io', 'torch');
const open = (name: string) => TorchFile.open(new FileSource(join(DIR, name)));

/** The JSON form tools/fixtures/pytorch_reader.py writes for plain data. */
function toJson(v: PickleValue): unknown {
  if (v instanceof PyDict) {
    return { [v.className === 'dict' ? 'dict' : 'odict']: [...v].map(([k, x]) => [toJson(k), toJson(x)]) };
  }
  if (isTuple(v)) return { tuple: v.map(toJson) };
  if (Array.isArray(v)) return v.map(toJson);
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString('hex') };
  if (typeof v === 'number' && Number.isSafeInteger(v) && !Object.is(v, -0)) return { int: String(v) }; // no float in the data is a small whole number
  if (typeof v === 'bigint') return { int: String(v) };
  if (typeof v === 'number') return { float: v };
  return v;
}

/** Python's repr of a float, parsed back: compare as numbers. */
function normaliseFloats(j: unknown): unknown {
  if (Array.isArray(j)) return j.map(normaliseFloats);
  if (j && typeof j === 'object') {
    const o = j as Record<string, unknown>;
    if ('float' in o && typeof o.float === 'string') return { float: Number(o.float.replace('inf', 'Infinity')) };
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, normaliseFloats(x)]));
  }
  return j;
}

describe('PyTorch checkpoints (src/io/pytorch.ts)', () => {
  for (const proto of [0, 1, 2, 3, 4, 5]) {
    it(`unpickles plain data written with protocol ${proto}`, async () => {
      const want = normaliseFloats(JSON.parse(await readFile(join(DIR, 'plain.json'), 'utf8')));
      const { value, end } = unpickle(await readFile(join(DIR, `plain.p${proto}.pkl`)), { label: `plain.p${proto}` });
      assert.deepEqual(toJson(value), want);
      assert.equal(end, (await readFile(join(DIR, `plain.p${proto}.pkl`))).length);
      // The memo: one list object referenced twice stays one object.
      const memo = (value as PyDict).get('memo') as PickleValue[];
      assert.equal(memo[0], memo[1]);
    });
  }

  for (const format of ['zip', 'legacy'] as const) {
    describe(`${format} format`, () => {
      let file: TorchFile;
      let expected: SafetensorsFile;
      before(async () => {
        file = await open(`tensors.${format}.pt`);
        expected = await SafetensorsFile.open(new FileSource(join(DIR, 'tensors.expected.safetensors')));
      });
      after(async () => {
        await file.close();
        await expected.close();
      });

      it('is recognised', () => assert.equal(file.format, format));

      it('reads every tensor bit for bit, views made contiguous', async () => {
        const sd = file.stateDict();
        assert.deepEqual(sd.names().sort(), expected.names().sort());
        for (const name of expected.names()) {
          assert.deepEqual(sd.info(name).shape, expected.info(name).shape, `${name} shape`);
          assert.equal(sd.info(name).dtype, expected.info(name).dtype, `${name} dtype`);
          assert.deepEqual(await sd.readRaw(name), await expected.readRaw(name), `${name} bytes`);
          const chunks: Uint8Array[] = [];
          for await (const c of sd.readRawChunks(name, 6)) chunks.push(c);
          assert.deepEqual(Buffer.concat(chunks), Buffer.from(await expected.readRaw(name)), `${name} chunked`);
        }
        assert.deepEqual(Array.from(await sd.readF32('bf16')), Array.from(await expected.readF32('bf16')));
        assert.deepEqual(Array.from(await sd.readI32('i64')), [0, -1, 2147483647, -2147483648, 5, 7]);
        await assert.rejects(sd.readI32('i64_big'), /does not fit in int32/);
      });

      it('keeps views as views of one shared storage', () => {
        const shared = (file.root as PyDict).get('shared') as PyDict;
        const [base, t, slice, row] = ['base', 't', 'slice', 'row'].map((k) => shared.get(k) as TorchTensor);
        for (const v of [t, slice, row]) assert.equal(v!.storage, base!.storage);
        assert.ok(!t!.isContiguous && !slice!.isContiguous && row!.isContiguous);
        assert.deepEqual([slice!.storageOffset, ...slice!.stride], [6, 6, 2]);
      });

      it('rebuilds the containers and plain values around the tensors', () => {
        const root = file.root as PyDict;
        const nested = root.get('nested') as PyDict;
        assert.deepEqual(toJson(nested.get('list')!), toJson([1, -2.5, 'three', null, true, false, Object.freeze([4, 5])]));
        const tup = nested.get('tuple');
        assert.ok(isTuple(tup) && tup[0] instanceof TorchTensor && tup[1] === 'x');
        const inner = nested.get('inner') as PyDict;
        assert.equal(inner.className, 'collections.OrderedDict');
        assert.deepEqual([...inner.keys()], ['w', 'n']);
        assert.equal(root.get('big_int'), 2n ** 70n);
        assert.equal(root.get('text'), 'héllo ♪');
        assert.deepEqual(root.get('bytes'), Uint8Array.from([0, 255, 97, 98]));
      });
    });
  }

  it('reads a Demucs package: the class by name, kwargs, and a half-precision state', async () => {
    const file = await open('demucs.th');
    const root = file.root as PyDict;
    const klass = root.get('klass');
    assert.ok(klass instanceof PyGlobal);
    assert.equal(klass.qualname, 'demucs.htdemucs.HTDemucs');
    const kwargs = root.get('kwargs') as PyDict;
    assert.deepEqual(kwargs.get('sources'), ['drums', 'bass', 'other', 'vocals']);
    const segment = kwargs.get('segment');
    assert.ok(segment instanceof PyFraction && segment.numerator === 39n && segment.denominator === 5n);
    assert.equal(kwargs.get('cac'), true);
    const state = file.stateDict('state');
    const expected = await SafetensorsFile.open(new FileSource(join(DIR, 'demucs.expected.safetensors')));
    assert.deepEqual(state.names().sort(), expected.names().sort());
    for (const name of expected.names()) {
      assert.equal(state.info(name).dtype, 'F16');
      assert.deepEqual(await state.readF32(name), await expected.readF32(name), name);
    }
    assert.throws(() => file.stateDict('nope'), /no "nope" entry/);
    await expected.close();
    await file.close();
  });

  it('refuses pickles that call anything but the tensor rebuilders, naming the global', async () => {
    await assert.rejects(open('malicious.zip.pt'), (e: Error) => e instanceof UnpicklingError && /refusing to call posix\.system/.test(e.message));
    await assert.rejects(open('malicious.legacy.pt'), /refusing to call builtins\.eval/);
    // Hand-made: NEWOBJ of a class, BUILD on something other than an OrderedDict.
    const newobj = Uint8Array.from([0x80, 2, 0x63, ...Buffer.from('os\n_wrap_close\n'), 0x29, 0x81, 0x2e]);
    assert.throws(() => unpickle(newobj), /refusing to create an instance of <global os\._wrap_close>/);
    const build = Uint8Array.from([0x80, 2, 0x5d, 0x7d, 0x62, 0x2e]);
    assert.throws(() => unpickle(build), /refusing to set the state/);
    // Classes a caller lists as inert (the Cog trainer's omegaconf config) are kept as data, never constructed.
    await assert.rejects(open('lm_final.pt'), /refusing to create an instance of <global omegaconf\.dictconfig\.DictConfig>/);
    const lm = await TorchFile.open(new FileSource(join(DIR, 'lm_final.pt')), 'lm_final.pt', { inert: (q) => q.startsWith('omegaconf.') });
    const cfg = (lm.root as PyDict).get('xp.cfg');
    assert.ok(cfg instanceof PyObject && cfg.cls.qualname === 'omegaconf.dictconfig.DictConfig' && cfg.state instanceof PyDict);
    await lm.close();
  });

  it('reports truncated and foreign files clearly', async () => {
    const bytes = await readFile(join(DIR, 'tensors.legacy.pt'));
    await assert.rejects(TorchFile.open(new BufferSource(bytes.subarray(0, bytes.length - 3), 'cut.pt')), /cut\.pt: the storages end at byte \d+ but the file has/);
    await assert.rejects(TorchFile.open(new BufferSource(bytes.subarray(0, 40), 'short.pt')), /short\.pt: the pickle is truncated/);
    const zip = await readFile(join(DIR, 'tensors.zip.pt'));
    await assert.rejects(TorchFile.open(new BufferSource(zip.subarray(0, zip.length - 30), 'cut.zip')), /cut\.zip: .*(end-of-central-directory|truncated)/);
    await assert.rejects(TorchFile.open(new BufferSource(new TextEncoder().encode('{"not": "torch"}'), 'x.bin')), /x\.bin: not a PyTorch checkpoint/);
    await assert.rejects(openTorchStateDict(new FileSource(join(DIR, 'plain.p2.pkl'))), /not a PyTorch checkpoint|wrong magic/);
  });
});
