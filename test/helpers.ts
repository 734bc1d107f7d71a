// Shared test helpers: the runtime, fixture loading, and a comparison that prints the first values that differ.

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { initRuntime, type Runtime } from '../src/runtime.js';
import { Tensor } from '../src/tensor.js';
import { readFile } from 'node:fs/promises';
import { SafetensorsFile, BufferSource, type TensorToWrite } from '../src/io/safetensors.js';
import '../src/ops.js';
import { backward } from '../src/autograd.js';
// static imports only: under mocha + tsx a dynamic import() loads a second copy of a module (and its runtime)
import { probe } from '../src/cli/probe.js';
import { limitsFromEnv } from '../src/cli/gpu.js';

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');

/**
 * The process's runtime, with the limits `MUSICGEN_LIMITS` asks for, as the CLIs: `MUSICGEN_LIMITS=default`
 * runs a test file under the spec's default limits (CI does so for the generation and training parity files).
 */
export function gpu(): Promise<Runtime> {
  return initRuntime({ limits: limitsFromEnv() });
}

export class Fixture {
  constructor(readonly file: SafetensorsFile) {}

  /** Reads the whole (small) fixture into memory, so no file stays open whatever the test forgets to close. */
  static async open(path: string): Promise<Fixture> {
    const full = join(FIXTURES, path);
    return new Fixture(await SafetensorsFile.open(new BufferSource(await readFile(full)), full));
  }

  has(name: string): boolean {
    return this.file.has(name);
  }

  shape(name: string): number[] {
    return [...this.file.info(name).shape];
  }

  f32(name: string): Promise<Float32Array> {
    return this.file.readF32(name);
  }

  i32(name: string): Promise<Int32Array> {
    return this.file.readI32(name);
  }

  /** Uploads a fixture tensor (f32, or i32 where the file holds integers). */
  async tensor(name: string, requiresGrad = false): Promise<Tensor> {
    const info = this.file.info(name);
    const isInt = info.dtype.startsWith('I') || info.dtype.startsWith('U');
    const data = isInt ? await this.i32(name) : await this.f32(name);
    const t = Tensor.from(data, info.shape, isInt ? 'i32' : 'f32');
    t.requiresGrad = requiresGrad;
    return t;
  }
}

export interface Tolerance {
  rtol?: number;
  atol?: number;
}

/** |a − e| ≤ atol + rtol·|e| everywhere; on failure lists the first mismatches and the worst one. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  label: string,
  { rtol = 1e-4, atol = 1e-5 }: Tolerance = {},
): void {
  assert.equal(actual.length, expected.length, `${label}: length ${actual.length} ≠ expected ${expected.length}`);
  const bad: string[] = [];
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const err = Math.abs(a - e);
    const ok = err <= atol + rtol * Math.abs(e) || (Number.isNaN(a) && Number.isNaN(e)) || a === e;
    if (!ok) {
      if (bad.length < 5) bad.push(`[${i}] ${a} vs ${e}`);
      if (!(err <= worst)) { worst = err; worstAt = i; }
    }
  }
  if (bad.length > 0) {
    assert.fail(`${label}: differs (rtol ${rtol}, atol ${atol}): ${bad.join(', ')}; worst |Δ| ${worst} at ${worstAt}`);
  }
}

export function assertShape(t: Tensor, shape: readonly number[], label: string): void {
  assert.deepEqual([...t.shape], [...shape], `${label}: shape`);
}

/**
 * Runs a case written by tools/fixtures/common.py `grad_case`: y = fn(x0, x1, ...), compared with the fixture's
 * y, then backward with its gy, each xi.grad compared with gxi (where the fixture has one).
 */
export async function checkGradCase(
  fx: Fixture,
  name: string,
  fn: (...xs: Tensor[]) => Tensor,
  tol: Tolerance = {},
  gradTol: Tolerance = tol,
): Promise<void> {
  const xs: Tensor[] = [];
  for (let i = 0; fx.has(`${name}.x${i}`); i++) xs.push(await fx.tensor(`${name}.x${i}`, fx.has(`${name}.gx${i}`)));
  const y = fn(...xs);
  assertShape(y, fx.shape(`${name}.y`), `${name}.y`);
  assertClose(await y.toArray(), await fx.f32(`${name}.y`), `${name}.y`, tol);
  const gy = await fx.tensor(`${name}.gy`);
  backward(y, gy);
  for (let i = 0; i < xs.length; i++) {
    if (!fx.has(`${name}.gx${i}`)) continue;
    const g = xs[i].grad;
    assert.ok(g, `${name}: no gradient for input ${i}`);
    assertClose(await g.toArray(), await fx.f32(`${name}.gx${i}`), `${name}.gx${i}`, gradTol);
  }
  for (const t of [...xs, y, gy]) t.dispose();
}

export interface ProbeRun {
  inputs: Fixture;
  expected: Fixture;
  out: Record<string, TensorToWrite>;
}

const probeRuns = new Map<string, Promise<ProbeRun>>();

/**
 * `npm run probe` on a fixture model with its committed inputs, next to transformers' outputs. Memoised: the
 * network parity tests and the training parity tests read the same run.
 */
export function probeFixture(model: string): Promise<ProbeRun> {
  let run = probeRuns.get(model);
  if (!run) {
    run = (async () => {
      const inputs = await Fixture.open(`probe/${model}.inputs.safetensors`);
      const expected = await Fixture.open(`probe/${model}.outputs.safetensors`);
      return { inputs, expected, out: await probe(join(FIXTURES, 'models', model), inputs.file) };
    })();
    probeRuns.set(model, run);
  }
  return run;
}

/** Decaying notes with two harmonics (a melody the chroma can follow), mono, at `sr`. */
export function tones(seconds: number, midi: number[], sr = 32000): Float32Array {
  const n = Math.round(seconds * sr);
  const seg = Math.round(0.25 * sr);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const f = 440 * 2 ** ((midi[Math.floor(i / seg) % midi.length] - 69) / 12);
    const t = (i % seg) / sr;
    out[i] = 0.4 * Math.exp(-3 * t) * (0.6 * Math.sin(2 * Math.PI * f * t) + 0.25 * Math.sin(4 * Math.PI * f * t));
  }
  return out;
}
