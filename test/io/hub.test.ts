// Tests for fetching models from the Hugging Face hub (src/io/hub.ts) against a fake hub on
// 127.0.0.1 (test/io/hub-server.ts): cache layout, no-network reuse, resumable Range
// downloads, size checks, shards, offline/unreachable/auth/pytorch-only messages, progress reports.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  defaultToken,
  HubError,
  defaultCacheDir,
  isHubId,
  repoCacheDir,
  resolveModel,
  resolveHubFile,
  type HubProgress,
} from '../../src/io/hub.js';
import { FAKE_SHA, FakeHub, closedPort, type FakeHubOptions } from './hub-server.js';

const REPO = 'test-org/musicgen-tiny';
const SHARDED = 'test-org/musicgen-sharded';
const TORCH = 'test-org/musicgen-torch';
const TORCH_SHARDED = 'test-org/musicgen-torch-sharded';
const GATED = 'test-org/musicgen-gated';
const WEIGHTS_SIZE = 300_000;

// Small files a MusicGen repo has; the contents only need to be distinct.
const SMALL: Record<string, string> = {
  'config.json': '{"model_type":"musicgen"}',
  'generation_config.json': '{"max_length":1500}',
  'preprocessor_config.json': '{"sampling_rate":32000}',
  'tokenizer.json': '{"model":{"type":"Unigram"}}',
  'tokenizer_config.json': '{"model_max_length":512}',
  'special_tokens_map.json': '{"eos_token":"</s>"}',
  'spiece.model': 'sentencepiece-bytes',
};
const MUSICGEN_FILES = [...Object.keys(SMALL), 'model.safetensors'].sort();

let root: string;
let tmp: string;
const weights = randomBytes(WEIGHTS_SIZE);
const shard1 = randomBytes(70_000);
const shard2 = randomBytes(50_000);
const savedEnv: Record<string, string | undefined> = {};
const ENV_KEYS = ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_HUB_CACHE', 'HF_HOME'];

async function write(file: string, data: string | Uint8Array): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await fsp.writeFile(file, data);
}

async function cache(): Promise<string> {
  return fsp.mkdtemp(path.join(tmp, 'cache-'));
}

async function withHub<T>(opts: FakeHubOptions, body: (hub: FakeHub) => Promise<T>): Promise<T> {
  const hub = await new FakeHub(root, opts).start();
  try {
    return await body(hub);
  } finally {
    await hub.stop();
  }
}

async function rejectsWith(p: Promise<unknown>, kind: string, ...patterns: RegExp[]): Promise<HubError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HubError, `expected HubError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    for (const re of patterns) assert.match(e.message, re);
    return e;
  }
  assert.fail('expected a rejection');
}

const throwingFetch: typeof fetch = () => {
  throw new Error('no network request expected');
};

describe('io/hub', function () {
  before(async () => {
    for (const k of ENV_KEYS) {
      savedEnv[k] = process.env[k];
      delete process.env[k]; // a real token must never go to the test server
    }
    tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'hub-test-'));
    root = path.join(tmp, 'hub');
    for (const [f, c] of Object.entries(SMALL)) await write(path.join(root, REPO, f), c);
    await write(path.join(root, REPO, 'model.safetensors'), weights);
    await write(path.join(root, REPO, 'pytorch_model.bin'), 'pickle');
    await write(path.join(root, REPO, 'README.md'), '# readme');
    await write(path.join(root, REPO, '.gitattributes'), '*.bin filter=lfs');

    const index = {
      metadata: { total_size: shard1.length + shard2.length },
      weight_map: {
        a: 'model-00001-of-00002.safetensors',
        b: 'model-00002-of-00002.safetensors',
        c: 'model-00001-of-00002.safetensors',
      },
    };
    await write(path.join(root, SHARDED, 'config.json'), SMALL['config.json']!);
    await write(path.join(root, SHARDED, 'tokenizer.json'), SMALL['tokenizer.json']!);
    await write(path.join(root, SHARDED, 'model.safetensors.index.json'), JSON.stringify(index));
    await write(path.join(root, SHARDED, 'model-00001-of-00002.safetensors'), shard1);
    await write(path.join(root, SHARDED, 'model-00002-of-00002.safetensors'), shard2);

    await write(path.join(root, TORCH, 'config.json'), SMALL['config.json']!);
    await write(path.join(root, TORCH, 'tokenizer.json'), SMALL['tokenizer.json']!);
    await write(path.join(root, TORCH, 'pytorch_model.bin'), 'pickle');
    // a PyTorch-only repo in shards
    await write(path.join(root, TORCH_SHARDED, 'config.json'), SMALL['config.json']!);
    await write(path.join(root, TORCH_SHARDED, 'tokenizer.json'), SMALL['tokenizer.json']!);
    await write(path.join(root, TORCH_SHARDED, 'pytorch_model.bin.index.json'), JSON.stringify({
      weight_map: { a: 'pytorch_model-00001-of-00002.bin', b: 'pytorch_model-00002-of-00002.bin' },
    }));
    await write(path.join(root, TORCH_SHARDED, 'pytorch_model-00001-of-00002.bin'), shard1);
    await write(path.join(root, TORCH_SHARDED, 'pytorch_model-00002-of-00002.bin'), shard2);

    await write(path.join(root, GATED, 'config.json'), SMALL['config.json']!);
    await write(path.join(root, GATED, 'tokenizer.json'), SMALL['tokenizer.json']!);
    await write(path.join(root, GATED, 'model.safetensors'), weights.subarray(0, 1000));
  });

  after(async () => {
    for (const k of ENV_KEYS) {
      if (savedEnv[k] === undefined) delete process.env[k];
      else process.env[k] = savedEnv[k];
    }
    await fsp.rm(tmp, { recursive: true, force: true });
  });

  it('tells hub ids from local paths', async () => {
    assert.equal(isHubId('facebook/musicgen-melody'), true);
    assert.equal(isHubId('facebook/musicgen-stereo-small'), true);
    assert.equal(isHubId('musicgen-small'), false); // owner/name only
    assert.equal(isHubId('a/b/c'), false);
    assert.equal(isHubId('./models'), false);
    assert.equal(isHubId('/abs/path'), false);
    assert.equal(isHubId('owner/-bad'), false);
    assert.equal(isHubId('owner/a..b'), false);
    const local = path.join(tmp, 'local-org', 'model');
    await fsp.mkdir(local, { recursive: true });
    const cwd = process.cwd();
    process.chdir(tmp);
    try {
      assert.equal(isHubId('local-org/model'), false); // an existing folder wins
    } finally {
      process.chdir(cwd);
    }
  });

  it('finds the cache folder the way huggingface_hub does', () => {
    assert.equal(defaultCacheDir({ HF_HUB_CACHE: '/x/hub', HF_HOME: '/y' }), '/x/hub');
    assert.equal(defaultCacheDir({ HF_HOME: '/y' }), path.join('/y', 'hub'));
    assert.equal(defaultCacheDir({}), path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
    assert.equal(repoCacheDir('/c', 'facebook/musicgen-small'), path.join('/c', 'models--facebook--musicgen-small'));
  });

  it('returns an existing local folder and rejects a missing one', async () => {
    assert.equal(await resolveModel(tmp, { fetch: throwingFetch }), path.resolve(tmp));
    await assert.rejects(resolveModel(path.join(tmp, 'nope')), /Model folder not found/);
  });

  it('downloads a repo into the cache, then reuses it without any request', async () => {
    const cacheDir = await cache();
    await withHub({}, async (hub) => {
      const progress: HubProgress[] = [];
      const dir = await resolveModel(REPO, { cacheDir, endpoint: hub.endpoint, onProgress: (p) => progress.push(p) });
      assert.equal(dir, path.join(repoCacheDir(cacheDir, REPO), 'snapshots', FAKE_SHA));
      assert.deepEqual((await fsp.readdir(dir)).sort(), MUSICGEN_FILES); // no .bin, README, leftovers
      for (const [f, c] of Object.entries(SMALL)) assert.equal(await fsp.readFile(path.join(dir, f), 'utf8'), c);
      assert.ok(weights.equals(await fsp.readFile(path.join(dir, 'model.safetensors'))));
      assert.equal((await fsp.readFile(path.join(repoCacheDir(cacheDir, REPO), 'refs', 'main'), 'utf8')).trim(), FAKE_SHA);
      // weights come last, so their presence proves the earlier files were done
      const last = progress[progress.length - 1]!;
      assert.deepEqual(last, { file: 'model.safetensors', received: WEIGHTS_SIZE, total: WEIGHTS_SIZE, fileIndex: 7, files: 8 });
      assert.ok(hub.count((r) => r.server === 'cdn' && r.method === 'GET') === 1);

      const before = hub.log.length;
      assert.equal(await resolveModel(REPO, { cacheDir, endpoint: hub.endpoint }), dir);
      assert.equal(hub.log.length, before, 'second call made requests');
      assert.equal(await resolveModel(REPO, { cacheDir, endpoint: hub.endpoint, fetch: throwingFetch }), dir);
      assert.equal(await resolveModel(REPO, { cacheDir, offline: true, fetch: throwingFetch }), dir);
    });
  });

  it('fetches one file of a repo once (multi-band diffusion weights), then reuses it offline', async () => {
    const cacheDir = await cache();
    await withHub({}, async (hub) => {
      await rejectsWith(resolveHubFile(REPO, 'offline.th', { cacheDir, offline: true, fetch: throwingFetch }), 'offline', /offline\.th/);
      const file = await resolveHubFile(REPO, 'pytorch_model.bin', { cacheDir, endpoint: hub.endpoint });
      assert.equal(file, path.join(repoCacheDir(cacheDir, REPO), 'snapshots', FAKE_SHA, 'pytorch_model.bin'));
      assert.equal(await fsp.readFile(file, 'utf8'), 'pickle');
      assert.equal(await resolveHubFile(REPO, 'pytorch_model.bin', { cacheDir, offline: true, fetch: throwingFetch }), file);
      await rejectsWith(resolveHubFile(REPO, 'missing.th', { cacheDir, endpoint: hub.endpoint }), 'not-found', /missing\.th/);
    });
  });

  it('reuses a Python huggingface_hub cache (refs + symlinked blobs)', async () => {
    const cacheDir = await cache();
    const repoDir = repoCacheDir(cacheDir, 'facebook/musicgen-small');
    const sha = 'f'.repeat(40);
    await write(path.join(repoDir, 'refs', 'main'), sha);
    const snap = path.join(repoDir, 'snapshots', sha);
    await fsp.mkdir(snap, { recursive: true });
    for (const [i, f] of ['config.json', 'tokenizer.json', 'model.safetensors'].entries()) {
      await write(path.join(repoDir, 'blobs', `blob${i}`), 'x');
      await fsp.symlink(`../../blobs/blob${i}`, path.join(snap, f));
    }
    assert.equal(await resolveModel('facebook/musicgen-small', { cacheDir, fetch: throwingFetch }), snap);
  });

  it('resumes with a Range request after the connection drops midway', async () => {
    const cacheDir = await cache();
    await withHub({ dropAfter: { [`${REPO}/model.safetensors`]: [100_000] } }, async (hub) => {
      const dir = await resolveModel(REPO, { cacheDir, endpoint: hub.endpoint });
      assert.ok(weights.equals(await fsp.readFile(path.join(dir, 'model.safetensors'))));
      const ranges = hub.log.filter((r) => r.server === 'cdn' && r.method === 'GET').map((r) => r.range);
      assert.equal(ranges.length, 2);
      assert.equal(ranges[0], undefined);
      const n = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1]);
      assert.ok(n > 0 && n <= 100_000, `resumed at ${ranges[1]}`);
      assert.ok(!(await fsp.readdir(dir)).some((f) => f.endsWith('.incomplete')));
    });
  });

  it('leaves a .incomplete file that the next call continues', async () => {
    const cacheDir = await cache();
    await withHub({ dropAfter: { [`${REPO}/model.safetensors`]: [120_000] } }, async (hub) => {
      const err = await rejectsWith(resolveModel(REPO, { cacheDir, endpoint: hub.endpoint, retries: 0 }), 'interrupted', /Run again to resume/);
      assert.match(err.message, /--model DIR/);
      const snap = path.join(repoCacheDir(cacheDir, REPO), 'snapshots', FAKE_SHA);
      const files = await fsp.readdir(snap);
      assert.ok(!files.includes('model.safetensors'), 'partial file moved into place');
      const partial = (await fsp.stat(path.join(snap, 'model.safetensors.incomplete'))).size;
      assert.ok(partial > 0 && partial <= 120_000);

      const dir = await resolveModel(REPO, { cacheDir, endpoint: hub.endpoint, retries: 0 });
      assert.ok(weights.equals(await fsp.readFile(path.join(dir, 'model.safetensors'))));
      const last = hub.log.filter((r) => r.server === 'cdn' && r.method === 'GET').at(-1);
      assert.equal(last?.range, `bytes=${partial}-`);
    });
  });

  for (const [delta, chunked] of [[10, false], [-10, false], [10, true], [-10, true]] as const) {
    it(`detects a size mismatch (X-Linked-Size ${delta > 0 ? '+' : ''}${delta}${chunked ? ', chunked' : ''}) and keeps no file`, async () => {
      const cacheDir = await cache();
      await withHub({ linkedSizeDelta: { [`${REPO}/model.safetensors`]: delta }, chunked }, async (hub) => {
        await rejectsWith(resolveModel(REPO, { cacheDir, endpoint: hub.endpoint }), 'size-mismatch', /size mismatch/, /model\.safetensors/);
        const snap = path.join(repoCacheDir(cacheDir, REPO), 'snapshots', FAKE_SHA);
        const files = await fsp.readdir(snap);
        assert.ok(!files.some((f) => f.startsWith('model.safetensors')), `left ${files.join(', ')}`);
      });
    });
  }

  it('downloads every shard named by model.safetensors.index.json', async () => {
    const cacheDir = await cache();
    await withHub({}, async (hub) => {
      const progress: HubProgress[] = [];
      const dir = await resolveModel(SHARDED, { cacheDir, endpoint: hub.endpoint, onProgress: (p) => progress.push(p) });
      assert.deepEqual((await fsp.readdir(dir)).sort(), [
        'config.json',
        'model-00001-of-00002.safetensors',
        'model-00002-of-00002.safetensors',
        'model.safetensors.index.json',
        'tokenizer.json',
      ]);
      assert.ok(shard1.equals(await fsp.readFile(path.join(dir, 'model-00001-of-00002.safetensors'))));
      assert.ok(shard2.equals(await fsp.readFile(path.join(dir, 'model-00002-of-00002.safetensors'))));
      assert.ok(progress.every((p) => p.files === 5));
      const before = hub.log.length;
      assert.equal(await resolveModel(SHARDED, { cacheDir, endpoint: hub.endpoint }), dir);
      assert.equal(hub.log.length, before);
      // a missing shard makes the snapshot incomplete again
      await fsp.unlink(path.join(dir, 'model-00002-of-00002.safetensors'));
      await resolveModel(SHARDED, { cacheDir, endpoint: hub.endpoint });
      assert.ok(shard2.equals(await fsp.readFile(path.join(dir, 'model-00002-of-00002.safetensors'))));
    });
  });

  it('explains what is missing in offline mode', async () => {
    const cacheDir = await cache();
    await rejectsWith(resolveModel(REPO, { cacheDir, offline: true, fetch: throwingFetch }), 'offline', /Offline mode/, /--model DIR/, /huggingface-cli download/);
    await withHub({}, async (hub) => {
      const dir = await resolveModel(REPO, { cacheDir, endpoint: hub.endpoint });
      await fsp.unlink(path.join(dir, 'model.safetensors'));
    });
    process.env.HF_HUB_OFFLINE = '1';
    try {
      await rejectsWith(resolveModel(REPO, { cacheDir, fetch: throwingFetch }), 'offline', /lacks model\.safetensors/, /--model DIR/);
    } finally {
      delete process.env.HF_HUB_OFFLINE;
    }
  });

  it('says the hub cannot be reached and suggests --model DIR', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`;
    await rejectsWith(
      resolveModel('facebook/musicgen-small', { cacheDir: await cache(), endpoint }),
      'unreachable',
      /Cannot reach the Hugging Face hub/,
      /refused/,
      /--model DIR/,
      /huggingface-cli download facebook\/musicgen-small --local-dir DIR/,
    );
    const dnsFail: typeof fetch = () => Promise.reject(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ENOTFOUND' } }));
    await rejectsWith(resolveModel('facebook/musicgen-small', { cacheDir: await cache(), fetch: dnsFail }), 'unreachable', /DNS lookup of huggingface\.co failed/);
  });

  it('fetches pytorch_model.bin (or its shards) from a repo without safetensors, then reuses it offline', async () => {
    const cacheDir = await cache();
    await withHub({}, async (hub) => {
      const dir = await resolveModel(TORCH, { cacheDir, endpoint: hub.endpoint });
      assert.deepEqual((await fsp.readdir(dir)).sort(), ['config.json', 'pytorch_model.bin', 'tokenizer.json']);
      assert.equal(await fsp.readFile(path.join(dir, 'pytorch_model.bin'), 'utf8'), 'pickle');
    });
    // the cached snapshot counts as complete: no request at all
    assert.equal(await resolveModel(TORCH, { cacheDir, offline: true, fetch: throwingFetch }), path.join(repoCacheDir(cacheDir, TORCH), 'snapshots', FAKE_SHA));
    const sharded = await withHub({}, (hub) => resolveModel(TORCH_SHARDED, { cacheDir, endpoint: hub.endpoint }));
    assert.deepEqual((await fsp.readdir(sharded)).sort(),
      ['config.json', 'pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin', 'pytorch_model.bin.index.json', 'tokenizer.json']);
    assert.ok(shard2.equals(await fsp.readFile(path.join(sharded, 'pytorch_model-00002-of-00002.bin'))));
    assert.equal(await resolveModel(TORCH_SHARDED, { cacheDir, offline: true, fetch: throwingFetch }), sharded);
  });

  it('sends HF_TOKEN to the hub only, and explains 401/403/404', async () => {
    await withHub({ gated: { [GATED]: 'hf_good' } }, async (hub) => {
      await rejectsWith(resolveModel(GATED, { cacheDir: await cache(), endpoint: hub.endpoint }), 'auth', /HTTP 401/, /HF_TOKEN/);
      await rejectsWith(resolveModel(GATED, { cacheDir: await cache(), endpoint: hub.endpoint, token: 'hf_bad' }), 'auth', /HTTP 403/, /gated/);
      await rejectsWith(resolveModel('test-org/no-such-repo', { cacheDir: await cache(), endpoint: hub.endpoint }), 'not-found', /not found/);
      hub.log.length = 0;
      process.env.HF_TOKEN = 'hf_good';
      try {
        const dir = await resolveModel(GATED, { cacheDir: await cache(), endpoint: hub.endpoint });
        assert.ok(weights.subarray(0, 1000).equals(await fsp.readFile(path.join(dir, 'model.safetensors'))));
      } finally {
        delete process.env.HF_TOKEN;
      }
      assert.ok(hub.log.filter((r) => r.server === 'hub').every((r) => r.authorization === 'Bearer hf_good'));
      assert.ok(hub.count((r) => r.server === 'cdn') > 0);
      assert.ok(hub.log.filter((r) => r.server === 'cdn').every((r) => r.authorization === undefined), 'token sent to the CDN');
    });
  });
});

describe('hub: access token', () => {
  it('comes from HF_TOKEN, else from the file huggingface-cli login saves', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'hf-token-'));
    assert.equal(await defaultToken({ HF_TOKEN: 'hf_env', HF_HOME: dir }), 'hf_env');
    assert.equal(await defaultToken({ HF_HOME: dir }), undefined);
    await fsp.writeFile(path.join(dir, 'token'), 'hf_saved\n');
    assert.equal(await defaultToken({ HF_HOME: dir }), 'hf_saved');
    await fsp.rm(dir, { recursive: true });
  });
});
