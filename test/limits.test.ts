// Default limits (`limits: 'default'`, MUSICGEN_LIMITS=default): a device that asks for nothing above the WebGPU
// spec's defaults, and the kernels' plans within them.

import assert from 'node:assert/strict';
import { requestGpu, parseLimits } from '../src/device.js';
import { limitsFromEnv } from '../src/cli/gpu.js';
import { initRuntime } from '../src/runtime.js';
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
