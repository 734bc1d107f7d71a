// The Demucs weights: found in torch.hub's cache, downloaded once with demucs's checksum rule, and a clear error
// naming --demucs / --no-melody-stems (and the library's options) when they cannot be had.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveDemucsWeights, checksumOfName, torchHubCheckpointDir, DemucsWeightsError } from '../../src/io/demucs-weights.js';
import { HTDEMUCS_URL, HTDEMUCS_FILE } from '../../src/model/stems.js';

const HINT = (m: string): boolean => /--demucs/.test(m) && /--no-melody-stems/.test(m) && /melodyStems: false/.test(m) && /`demucs`/.test(m);

/** A fetch serving `body` at any URL, counting calls. */
function fakeFetch(body: Uint8Array): { fetch: typeof fetch; calls: string[] } {
  const calls: string[] = [];
  const f = (async (url: string | URL | Request) => {
    calls.push(String(url));
    return new Response(new Blob([body as Uint8Array<ArrayBuffer>]), { status: 200, headers: { 'content-length': String(body.length) } });
  }) as typeof fetch;
  return { fetch: f, calls };
}

describe('io/demucs-weights', () => {
  it('the htdemucs URL is demucs\'s, and the checksum is the name\'s part after the signature (torch.hub, repo.py)', () => {
    assert.equal(HTDEMUCS_URL, 'https://dl.fbaipublicfiles.com/demucs/hybrid_transformer/955717e8-8726e21a.th');
    assert.equal(checksumOfName(HTDEMUCS_FILE), '8726e21a');
    assert.equal(checksumOfName('/x/small.th'), null);
    assert.equal(torchHubCheckpointDir({ TORCH_HOME: '/t' }), join('/t', 'hub', 'checkpoints'));
    assert.equal(torchHubCheckpointDir({ XDG_CACHE_HOME: '/c' }), join('/c', 'torch', 'hub', 'checkpoints'));
  });

  it('offline with nothing cached: an error naming --demucs, --no-melody-stems and the library options', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mg-demucs-'));
    const { fetch, calls } = fakeFetch(new Uint8Array(4));
    await assert.rejects(resolveDemucsWeights(HTDEMUCS_URL, { cacheDir: dir, offline: true, fetch }), (e: unknown) => {
      assert.ok(e instanceof DemucsWeightsError && e.kind === 'offline');
      assert.ok(HINT(e.message), e.message);
      assert.match(e.message, /955717e8-8726e21a\.th/);
      return true;
    });
    assert.deepEqual(calls, [], 'offline never fetches');
    // and when the network fails
    const down = (async () => { throw new TypeError('fetch failed'); }) as typeof fetch;
    await assert.rejects(resolveDemucsWeights(HTDEMUCS_URL, { cacheDir: dir, offline: false, fetch: down }),
      (e: unknown) => e instanceof DemucsWeightsError && e.kind === 'unreachable' && HINT(e.message));
    await assert.rejects(resolveDemucsWeights(join(dir, 'missing.th')), (e: unknown) => e instanceof DemucsWeightsError && HINT(e.message));
  });

  it('downloads once into the cache when the sha256 fits the name; a wrong one is refused and not kept', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mg-demucs-'));
    const body = new TextEncoder().encode('pretend package');
    const sha = createHash('sha256').update(body).digest('hex');
    const good = `https://example.test/demucs/0123abcd-${sha.slice(0, 8)}.th`;
    const { fetch, calls } = fakeFetch(body);
    const got: number[] = [];
    const file = await resolveDemucsWeights(good, { cacheDir: dir, offline: false, fetch, onProgress: (p) => got.push(p.received) });
    assert.equal(file, join(dir, `0123abcd-${sha.slice(0, 8)}.th`));
    assert.deepEqual(await readFile(file), Buffer.from(body));
    assert.equal(got.at(-1), body.length);
    // cached: no second download, also offline
    assert.equal(await resolveDemucsWeights(good, { cacheDir: dir, offline: true, fetch }), file);
    assert.equal(calls.length, 1);

    const bad = `https://example.test/demucs/0123abcd-${sha[0] === '0' ? '1' : '0'}${sha.slice(1, 8)}.th`;
    await assert.rejects(resolveDemucsWeights(bad, { cacheDir: dir, offline: false, fetch }), (e: unknown) => e instanceof DemucsWeightsError && e.kind === 'checksum');
    assert.deepEqual((await readdir(dir)).sort(), [`0123abcd-${sha.slice(0, 8)}.th`], 'nothing left of the bad download');
  });

  it('a local file named {signature}-{checksum}.th is checked as demucs checks it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mg-demucs-'));
    const body = new TextEncoder().encode('another package');
    const sha = createHash('sha256').update(body).digest('hex');
    const ok = join(dir, `aaaa0000-${sha.slice(0, 8)}.th`);
    const wrong = join(dir, `aaaa0000-${sha[0] === 'f' ? 'e' : 'f'}${sha.slice(1, 8)}.th`);
    await writeFile(ok, body);
    await writeFile(wrong, body);
    assert.equal(await resolveDemucsWeights(ok), ok);
    await assert.rejects(resolveDemucsWeights(wrong), (e: unknown) => e instanceof DemucsWeightsError && e.kind === 'checksum');
    const plain = join(dir, 'small.th');
    await writeFile(plain, body);
    assert.equal(await resolveDemucsWeights(plain), plain, 'no checksum in the name: used as is');
  });
});
