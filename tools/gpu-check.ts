// The greedy-generation parity cases of test/model/generate.test.ts (transformers' generate() on the tiny test
// models: text, melody, stereo, guidance, continuation), run outside mocha on whatever adapter the machine has:
// tools/gpu-bench.sh bundles this file and runs it on the GPU machine, where there is no mocha, before the
// benchmarks. The fixtures are read from test/fixtures beside the bundle (gpu-bench.sh links them there).
//
//   node --import tsx tools/gpu-check.ts [--json]
//
// Prints one line per case, and with --json one JSON object last: { device, cases: { name: "ok" | error } }.
// Exits 1 if any case differs.

import { gpu } from '../test/helpers.js';
import type { MusicgenModel } from '../src/model/musicgen.js';
import { deviceName } from '../src/bench/util.js';
import { GREEDY_CASES, checkGreedyCase, loadMelodyWav } from '../test/model/greedy-cases.js';

async function main(): Promise<boolean> {
  const rt = await gpu();
  const melodyWav = await loadMelodyWav();
  const models = new Map<string, MusicgenModel>();
  const cases: Record<string, string> = {};
  for (const name of GREEDY_CASES) {
    const t0 = performance.now();
    try {
      await checkGreedyCase(name, models, melodyWav);
      cases[name] = 'ok';
    } catch (e) {
      cases[name] = (e as Error).message.split('\n').slice(0, 6).join(' | ');
    }
    process.stderr.write(`${name}: ${cases[name]} (${((performance.now() - t0) / 1000).toFixed(2)} s)\n`);
  }
  for (const m of models.values()) m.dispose();
  const ok = Object.values(cases).every((v) => v === 'ok');
  if (process.argv.includes('--json')) console.log(JSON.stringify({ check: 'greedy-generation', device: deviceName(rt), ok, cases }));
  return ok;
}

main().then((ok) => process.exit(ok ? 0 : 1), (e: unknown) => {
  console.error(`gpu-check: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
