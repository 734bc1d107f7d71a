// Gets a GPUDevice in Node (the `webgpu` package: Dawn) or in the browser (navigator.gpu), with the adapter's
// real limits and whichever optional features it has.

export interface GpuContext {
  device: GPUDevice;
  adapterInfo: { vendor: string; architecture: string; description: string };
  features: { f16: boolean; subgroups: boolean; timestampQuery: boolean };
  /** Dawn's instance (Node only). Held for the device's whole life: if V8 collects it, Dawn aborts. */
  instance: unknown;
}

export interface DeviceOptions {
  /** Dawn options for Node, e.g. ['backend=opengles'] (see the `webgpu` package's README). */
  dawnFlags?: string[];
  powerPreference?: GPUPowerPreference;
}

const NO_ADAPTER_HELP = [
  'No WebGPU adapter was found.',
  '- In Node on Linux without a GPU: install the Mesa 25 software Vulkan driver (lavapipe) with',
  '  `bash tools/install-lavapipe.sh` as root (Debian bookworm: bookworm-backports mesa-vulkan-drivers; the',
  '  bookworm Mesa 22 driver is refused by Dawn), and set XDG_RUNTIME_DIR (e.g. /tmp).',
  '- With a GPU: install its Vulkan driver (check with `vulkaninfo --summary`).',
  '- In a browser: use one with WebGPU enabled (Chrome/Edge 113+, or --enable-unsafe-webgpu).',
].join('\n');

async function nodeGpu(flags: string[]): Promise<{ gpu: GPU; instance: unknown }> {
  if (process.env.XDG_RUNTIME_DIR === undefined) process.env.XDG_RUNTIME_DIR = '/tmp'; // Mesa complains without it
  const moduleName = 'webgpu'; // kept in a variable so browser bundlers do not try to include Dawn
  const mod = (await import(/* @vite-ignore */ moduleName)) as {
    create: (flags: string[]) => GPU;
    globals: Record<string, unknown>;
  };
  Object.assign(globalThis, mod.globals);
  const gpu = mod.create(flags);
  return { gpu, instance: gpu };
}

export async function requestGpu(opts: DeviceOptions = {}): Promise<GpuContext> {
  const inBrowser = typeof navigator !== 'undefined' && (navigator as Navigator).gpu !== undefined;
  const { gpu, instance } = inBrowser
    ? { gpu: (navigator as Navigator).gpu, instance: null }
    : await nodeGpu(opts.dawnFlags ?? []);
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) throw new Error(NO_ADAPTER_HELP);
  const wanted: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  // Ask for everything the adapter allows: the defaults (128 MiB bindings, 8 storage buffers) are too small.
  const L = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
    maxBufferSize: L.maxBufferSize,
    maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: L.maxComputeWorkgroupSizeY,
    maxComputeWorkgroupsPerDimension: L.maxComputeWorkgroupsPerDimension,
  };
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  const info = adapter.info ?? { vendor: '', architecture: '', description: '' };
  return {
    device,
    adapterInfo: { vendor: info.vendor, architecture: info.architecture, description: info.description },
    features: {
      f16: requiredFeatures.includes('shader-f16'),
      subgroups: requiredFeatures.includes('subgroups'),
      timestampQuery: requiredFeatures.includes('timestamp-query'),
    },
    instance,
  };
}
