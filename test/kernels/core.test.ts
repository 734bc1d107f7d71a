// Element-wise, matmul and shape kernels against PyTorch (tools/fixtures/kernels_core.py).

import assert from 'node:assert/strict';
import { Fixture, assertClose, checkGradCase, gpu } from '../helpers.js';
import { gemvApplies } from '../../src/kernels/gemv.js';
import * as ops from '../../src/ops.js';
import { Tensor } from '../../src/tensor.js';
import { Runtime } from '../../src/runtime.js';

describe('kernels: element-wise, matmul, shape', () => {
  let fx: Fixture;
  before(async () => {
    await gpu();
    fx = await Fixture.open('kernels/core.safetensors');
  });

  const unary: Record<string, (x: Tensor) => Tensor> = {
    neg: ops.neg, relu: ops.relu, gelu: ops.gelu, elu: (x) => ops.elu(x, 1), tanh: ops.tanh, sigmoid: ops.sigmoid,
    exp: ops.exp, log: ops.log, sqrt: ops.sqrt, square: ops.square, affine: (x) => ops.affine(x, 0.5, -2),
  };
  for (const [name, fn] of Object.entries(unary)) {
    it(`unary ${name} forward and backward`, () => checkGradCase(fx, `unary.${name}`, fn, { rtol: 1e-5, atol: 1e-6 }));
  }

  for (const name of ['add', 'sub', 'mul', 'div'] as const) {
    it(`binary ${name} with broadcasting, forward and backward`, () =>
      checkGradCase(fx, `binary.${name}`, (a, b) => ops.binary(name, a, b), { rtol: 1e-5, atol: 1e-6 }));
  }
  it('binary add broadcasting both ways across ranks', () =>
    checkGradCase(fx, 'binary.add_rank', ops.add, { rtol: 1e-5, atol: 1e-6 }));
  it('sumTo and its backward', () =>
    checkGradCase(fx, 'sum_to', (x) => ops.reshape(ops.sumTo(x, [1, 4, 1]), [4, 1]), { rtol: 1e-5, atol: 1e-5 }));

  const mm: Record<string, (...xs: Tensor[]) => Tensor> = {
    plain: (a, b) => ops.matmul(a, b),
    tb: (a, b) => ops.matmul(a, b, { transB: true }),
    ta: (a, b) => ops.matmul(a, b, { transA: true }),
    ta_tb: (a, b) => ops.matmul(a, b, { transA: true, transB: true }),
    batched: (a, b) => ops.matmul(a, b),
    batched_tb: (a, b) => ops.matmul(a, b, { transB: true }),
    shared_weight: (a, b, bias) => ops.linear(a, b, bias),
    shared_ta: (a, b) => ops.matmul(a, b, { transA: true }),
    relu: (a, b, bias) => ops.linear(a, b, bias, 'relu'),
    gelu: (a, b, bias) => ops.linear(a, b, bias, 'gelu'),
    big: (a, b) => ops.matmul(a, b),
    tb4: (a, b, bias) => ops.linear(a, b, bias, 'gelu'),
    batched_tb4: (a, b) => ops.matmul(a, b, { transB: true }),
  };
  for (const [name, fn] of Object.entries(mm)) {
    it(`matmul ${name}, forward and backward`, () => checkGradCase(fx, `mm.${name}`, fn, { rtol: 1e-4, atol: 1e-5 }));
  }

  it('matmul with a fused activation (no gradient recorded) matches too', async () => {
    for (const act of ['relu', 'gelu'] as const) {
      await checkGradCaseForwardOnly(fx, `mm.${act}`, (a, b, bias) => ops.linear(a, b, bias, act));
    }
  });

  it('matmul at sizes that take every tiling of the subgroup kernels matches a float64 CPU product, and so does the fallback without subgroups', async () => {
    // The fixtures are too small for the wider tilings (up to 4 row blocks: 64 columns per workgroup as 32 lanes
    // × 2 columns; more rows: 64 lanes × 2 columns when that leaves ≥ 16 workgroups, else × 1); these sizes take
    // each, with edges past 16 rows and the workgroup's columns.
    // A second device without subgroups runs the plain kernel the subgroup ones replaced on this adapter.
    for (const rt of [await gpu(), await Runtime.create({ without: ['subgroups'] })]) await matmulAgainstCpu(rt);
  });

  async function matmulAgainstCpu(rt: Runtime): Promise<void> {
    let seed = 1;
    const rand = (n: number) => Float32Array.from({ length: n }, () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1);
    const cases: [number, number, number, boolean, boolean][] = [
      [50, 1100, 12, false, false], [50, 1100, 12, true, false], [50, 1100, 12, false, true], [50, 1100, 12, true, true],
      [50, 500, 12, false, false], [50, 500, 12, false, true], [50, 200, 13, false, true], [9, 70, 8, false, true],
      [83, 1100, 12, false, true], [83, 200, 12, false, true],
    ];
    for (const [M, N, K, transA, transB] of cases) {
      const av = rand(M * K);
      const bv = rand(K * N);
      const biasv = rand(N);
      const a = Tensor.from(av, transA ? [K, M] : [M, K], 'f32', rt);
      const b = Tensor.from(bv, transB ? [N, K] : [K, N], 'f32', rt);
      const bias = Tensor.from(biasv, [N], 'f32', rt);
      const y = ops.matmul(a, b, { transA, transB, bias, act: 'relu' });
      const want = new Float64Array(M * N);
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let s = biasv[n];
          for (let k = 0; k < K; k++) s += av[transA ? k * M + m : m * K + k] * bv[transB ? n * K + k : k * N + n];
          want[m * N + n] = Math.max(s, 0);
        }
      }
      const label = `matmul ${M}×${N}×${K}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}${rt.ctx.features.subgroups ? '' : ', no subgroups'}`;
      assertClose(await y.toArray(), want, label, { rtol: 1e-5, atol: 1e-5 });
      for (const t of [a, b, bias, y]) t.dispose();
    }
  }

  it('the decode-time gemv (rows ≤ 8 against a stored Linear weight) matches, with and without bias/GELU', async function () {
    const rt = await gpu();
    if (!rt.ctx.features.subgroups) this.skip();
    for (const R of [1, 2, 5, 8]) {
      const [x, w, b] = await Promise.all(['x', 'w', 'b'].map((n) => fx.tensor(`gemv.r${R}.${n}`)));
      assert.ok(gemvApplies(rt, R, 36));
      const before = rt.stats.dispatches;
      const y = ops.linear(x, w, b, 'gelu'); // no gradient recorded → matmul routes to gemv: one dispatch
      assert.equal(rt.stats.dispatches - before, 1);
      assertClose(await y.toArray(), await fx.f32(`gemv.r${R}.y`), `gemv r${R}`, { rtol: 1e-4, atol: 1e-5 });
      const plain = ops.gemv(x, w, undefined, 0, [R, 37]);
      assertClose(await plain.toArray(), await fx.f32(`gemv.r${R}.y_plain`), `gemv r${R} plain`, { rtol: 1e-4, atol: 1e-5 });
      for (const t of [x, w, b, y, plain]) t.dispose();
    }
  });

  it('cast f32 → f16 → f32 rounds as PyTorch, f32 → i32 truncates', async function () {
    const x = await fx.tensor('cast.x');
    const asInt = ops.cast(x, 'i32');
    assert.deepEqual(Array.from(await asInt.read()), Array.from(await fx.i32('cast.i32')));
    if (!x.rt.ctx.features.f16) this.skip();
    const half = ops.cast(x, 'f16');
    assert.deepEqual(Array.from(await ops.cast(half, 'f32').read()), Array.from(await fx.f32('cast.f16')));
  });

  it('permute', () => checkGradCase(fx, 'permute', (x) => ops.permute(x, [2, 0, 3, 1])));
  it('narrow', () => checkGradCase(fx, 'narrow', (x) => ops.narrow(x, 1, 2, 3)));
  it('pad with zeros', () => checkGradCase(fx, 'pad', (x) => ops.padZeros(x, 1, 2, 3)));
  it('concat', () => checkGradCase(fx, 'concat', (a, b, c) => ops.concat([a, b, c], 1)));
});

async function checkGradCaseForwardOnly(fx: Fixture, name: string, fn: (...xs: Tensor[]) => Tensor): Promise<void> {
  const { assertClose } = await import('../helpers.js');
  const xs: Tensor[] = [];
  for (let i = 0; fx.has(`${name}.x${i}`); i++) xs.push(await fx.tensor(`${name}.x${i}`));
  const y = fn(...xs);
  assertClose(await y.toArray(), await fx.f32(`${name}.y`), `${name}.y (fused)`, { rtol: 1e-4, atol: 1e-5 });
  for (const t of [...xs, y]) t.dispose();
}
