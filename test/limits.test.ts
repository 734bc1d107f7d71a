// Default limits (`limits: 'default'`, MUSICGEN_LIMITS=default): a device that asks for nothing above the WebGPU
// spec's defaults, and the kernels' plans within them.

import assert from 'node:assert/strict';
import { requestGpu, parseLimits } from '../src/device.js';
import { limitsFromEnv } from '../src/cli/gpu.js';
import { initRuntime, storageBindings, type Runtime, type RuntimeLimits } from '../src/runtime.js';
import { Tensor } from '../src/tensor.js';
import * as ops from '../src/ops.js';
import { WGSL } from '../src/wgsl.generated.js';
import { gpu } from './helpers.js';

/** The spec's defaults (https://gpuweb.github.io/gpuweb/#limit-default) that the kernels must fit. */
const SPEC_DEFAULTS = {
  maxStorageBuffersPerShaderStage: 8,
  maxStorageBufferBindingSize: 128 * 2 ** 20,
  maxBufferSize: 256 * 2 ** 20,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupSizeY: 256,
  maxComputeWorkgroupSizeZ: 64,
  maxComputeWorkgroupsPerDimension: 65535,
} as const;

describe('default limits: the option', function () {
  this.timeout(120_000);

  it("limits: 'default' asks for nothing: the device has the spec's defaults", async () => {
    const g = await requestGpu({ limits: 'default' });
    try {
      assert.equal(g.limits, 'default');
      for (const [name, value] of Object.entries(SPEC_DEFAULTS)) {
        assert.equal(g.device.limits[name as keyof typeof SPEC_DEFAULTS], value, name);
      }
    } finally {
      g.device.destroy();
    }
  });

  it('an unknown value is a clear error, from the option and from MUSICGEN_LIMITS', async () => {
    assert.equal(parseLimits('default'), 'default');
    assert.throws(() => parseLimits('defaults'), /limits: unknown limits "defaults" \(expected 'adapter' or 'default'\)/);
    await assert.rejects(requestGpu({ limits: 'max' as never }), /unknown limits "max"/);
    assert.equal(limitsFromEnv({}), undefined);
    assert.equal(limitsFromEnv({ MUSICGEN_LIMITS: 'default' }), 'default');
    assert.equal(limitsFromEnv({ MUSICGEN_LIMITS: 'adapter' }), 'adapter');
    assert.throws(() => limitsFromEnv({ MUSICGEN_LIMITS: 'low' }), /MUSICGEN_LIMITS: unknown limits "low"/);
  });

  it('the runtime keeps the limits it was made with; asking for others later is an error', async () => {
    const rt = await gpu();
    assert.equal(rt.ctx.limits, limitsFromEnv() ?? 'adapter');
    const other = rt.ctx.limits === 'default' ? 'adapter' : 'default';
    await assert.rejects(initRuntime({ limits: other }), new RegExp(`already created with '${rt.ctx.limits}' limits`));
    assert.equal(await initRuntime({ limits: rt.ctx.limits }), rt);
  });
});

/** Bytes of workgroup memory `source` declares (scalars, vec2/vec4 of 4-byte scalars, arrays sized by a literal or a const). */
function workgroupBytes(source: string): number {
  const consts = new Map<string, number>();
  for (const m of source.matchAll(/const (\w+)(?:\s*:\s*u32)?\s*=\s*(\d+)u?;/g)) consts.set(m[1], Number(m[2]));
  const size = (type: string): number => {
    const arr = /^array<(.+),\s*(\w+)>$/.exec(type);
    if (arr) {
      const n = /^\d+$/.test(arr[2]) ? Number(arr[2]) : consts.get(arr[2]);
      if (n === undefined) throw new Error(`array size ${arr[2]} is not a literal or a const`);
      return n * size(arr[1].trim());
    }
    const vec = /^vec([234])<(f32|u32|i32)>$/.exec(type);
    if (vec) return (vec[1] === '3' ? 4 : Number(vec[1])) * 4;
    if (/^(f32|u32|i32|atomic<(u32|i32)>)$/.test(type)) return 4;
    throw new Error(`workgroup variable of type ${type}`);
  };
  let bytes = 0;
  for (const m of source.replace(/\/\/[^\n]*/g, '').matchAll(/var<workgroup>\s*\w+\s*:\s*([^;]+);/g)) bytes += size(m[1].trim());
  return bytes;
}

describe('default limits: every shader in shaders/ fits them', () => {
  for (const [name, source] of Object.entries(WGSL).filter(([n]) => !n.startsWith('lib/'))) {
    it(name, () => {
      assert.ok(storageBindings(source) <= SPEC_DEFAULTS.maxStorageBuffersPerShaderStage, `${storageBindings(source)} storage buffers`);
      assert.ok(workgroupBytes(source) <= SPEC_DEFAULTS.maxComputeWorkgroupStorageSize, `${workgroupBytes(source)} bytes of workgroup memory`);
      const consts = new Map([...source.matchAll(/const (\w+)(?:\s*:\s*u32)?\s*=\s*(\d+)u?;/g)].map((m) => [m[1], Number(m[2])]));
      for (const m of source.matchAll(/@workgroup_size\(([^)]*)\)/g)) {
        const [x, y = 1, z = 1] = m[1].split(',').map((d) => d.trim().replace(/u$/, '')).map((d) => (/^\d+$/.test(d) ? Number(d) : consts.get(d)!));
        assert.ok(x <= SPEC_DEFAULTS.maxComputeWorkgroupSizeX && y <= SPEC_DEFAULTS.maxComputeWorkgroupSizeY && z <= SPEC_DEFAULTS.maxComputeWorkgroupSizeZ, `workgroup ${m[1]}`);
        assert.ok(x * y * z <= SPEC_DEFAULTS.maxComputeInvocationsPerWorkgroup, `workgroup ${m[1]}: ${x * y * z} invocations`);
      }
    });
  }
});

describe('default limits: the plans follow the runtime\'s limits (lowered here to split small data)', function () {
  this.timeout(120_000);
  let rt: Runtime;
  let saved: RuntimeLimits;
  before(async () => {
    rt = await gpu();
    saved = { ...rt.limits };
  });
  afterEach(() => Object.assign(rt.limits, saved));

  it('a 1-D launch past the workgroups per dimension is split over y (element-wise add)', async () => {
    const n = 256 * 10 + 7;
    const a = Array.from({ length: n }, (_, i) => i);
    const b = Array.from({ length: n }, (_, i) => 2 * i + 1);
    rt.limits.maxComputeWorkgroupsPerDimension = 4;
    assert.deepEqual(rt.grid(11), [4, 3]);
    assert.throws(() => rt.grid(17), /17 workgroups do not fit a 4 × 4 grid/);
    const y = ops.add(Tensor.from(a, [n]), Tensor.from(b, [n]));
    assert.deepEqual(Array.from(await y.read()), a.map((v, i) => v + b[i]));
    assert.throws(() => rt.dispatch({ shader: 'grad_accumulate', params: { n: 8 }, bindings: [y.binding(), y.binding(), y.binding()], workgroups: [5] }),
      /grid \[5\] exceeds the device's 4 workgroups per dimension/);
  });

  it('conv2d takes its im2col columns in bands that fit the largest binding', async () => {
    const x = Tensor.from(Array.from({ length: 2 * 9 * 10 }, (_, i) => Math.sin(i)), [1, 2, 9, 10]);
    const w = Tensor.from(Array.from({ length: 3 * 2 * 9 }, (_, i) => Math.cos(i)), [3, 2, 3, 3]);
    const whole = await ops.conv2d(x, w, undefined, { padding: 1 }).read();
    // the columns are [1, 18, 90] (6480 bytes): at most 2 output rows (18 · 20 · 4 = 1440 bytes) per band
    rt.limits.maxStorageBufferBindingSize = 1500;
    const before = rt.stats.dispatches;
    const banded = await ops.conv2d(x, w, undefined, { padding: 1 }).read();
    assert.ok(rt.stats.dispatches - before >= 5 * 2, 'five bands: im2col and a matmul each');
    assert.deepEqual(Array.from(banded), Array.from(whole));
  });

  it('a binding past the largest allowed, or too many storage buffers, is refused before Dawn sees it', () => {
    const t = Tensor.zeros([64]);
    rt.limits.maxStorageBufferBindingSize = 128;
    assert.throws(() => rt.dispatch({ shader: 'grad_accumulate', params: { n: 64 }, bindings: [t.binding(), t.binding(), t.binding()], workgroups: [1] }),
      /grad_accumulate: binding 1 is 256 bytes, over the device's maxStorageBufferBindingSize \(128\)/);
    Object.assign(rt.limits, saved);
    rt.limits.maxStorageBuffersPerShaderStage = 2;
    const code = `@group(0) @binding(0) var<storage, read> A: array<f32>;\n@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;\n@compute @workgroup_size(1) fn main() { C[0] = A[0] + B[0]; }`;
    assert.throws(() => rt.dispatch({ shader: 'limits_three_buffers', code, bindings: [t.binding(), t.binding(), t.binding()], workgroups: [1] }),
      /limits_three_buffers: 3 storage buffers, over the device's maxStorageBuffersPerShaderStage \(2\)/);
    t.dispose();
  });
});
