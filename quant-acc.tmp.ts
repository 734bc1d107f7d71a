import { initRuntime } from '/work/wt-quant/src/runtime.js';
import { openSafetensorsFile } from '/work/wt-quant/src/io/file-source.js';
import { probe } from '/work/wt-quant/src/cli/probe.js';
await initRuntime();
const inputs = await openSafetensorsFile('/tmp/quant-small.inputs.safetensors');
const expected = await openSafetensorsFile('/tmp/quant-small.outputs.safetensors');
for (const dtype of ['f32', 'q8', 'f16', 'q4'] as const) {
  const t0 = performance.now();
  const out = await probe('/tmp/musicgen-small-random', inputs, { dtype });
  const row: string[] = [dtype];
  for (const name of ['text.hidden', 'lm.logits']) {
    const a = out[name].data as Float32Array;
    const b = await expected.readF32(name);
    let num = 0, den = 0;
    for (let i = 0; i < b.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
    row.push(`${name} ${Math.sqrt(num / den).toExponential(2)}`);
  }
  console.log(row.join('  '), `(${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}
process.exit(0);
