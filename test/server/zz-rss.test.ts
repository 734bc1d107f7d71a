import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { runtime } from '/work/main/src/runtime.js';
import { startServer, request } from '/work/main/test/server/util.js';
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
describe('rss', () => {
  it('trend', async () => {
    const s = await startServer({ retainCount: 20 });
    const rt = runtime();
    for (let i = 0; i < 800; i++) {
      const r = await request(s.base, 'POST', '/predictions', { input: { prompt: `tiny ${i % 7}`, duration: 0.1, seed: i } });
      if (r.body.status !== 'succeeded') throw new Error(String(r.body.error));
      if (i % 100 === 0) { gc(); gc(); const m = process.memoryUsage(); console.log(i, (m.rss / 2 ** 20).toFixed(1), (m.heapUsed / 2 ** 20).toFixed(1), (m.external/2**20).toFixed(1), (m.arrayBuffers/2**20).toFixed(1), JSON.stringify(rt.stats)); }
    }
    await s.app.close();
  });
});
