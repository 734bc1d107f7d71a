// Gets a GPUDevice in Node (the `webgpu` package: Dawn) or in the browser (navigator.gpu), with the adapter's
// real limits (or only the WebGPU spec's defaults, `limits: 'default'`) and whichever optional features it has.

export interface GpuContext {
  device: GPUDevice;
  adapterInfo: { vendor: string; architecture: string; description: string };
  features: {
    f16: boolean; subgroups: boolean; timestampQuery: boolean;
  };
  /** The limits asked for (see `DeviceOptions.limits`); the device's own are `device.limits`. */
  limits: LimitsMode;
  /** Dawn's instance (Node only). Held for the device's whole life: if V8 collects it, Dawn aborts. */
  instance: unknown;
}

/**
 * `adapter`: every limit as high as the adapter allows (the fastest plans: one binding per tensor, large
 * workgroups). `default`: nothing above the WebGPU spec's defaults (8 storage buffers per stage, 128 MiB per
 * binding, 256 MiB per buffer, 16 KiB of workgroup memory, 256 invocations per workgroup), what any adapter grants
 * without asking: the runtime then plans within those (how a page that cannot request more must run).
 */
export type LimitsMode = 'adapter' | 'default';
export const LIMITS_MODES: readonly LimitsMode[] = ['adapter', 'default'];

/** `value` as a LimitsMode, or an error naming where it came from (`where`: e.g. "MUSICGEN_LIMITS") and the choices. */
export function parseLimits(value: unknown, where = 'limits'): LimitsMode {
  if ((LIMITS_MODES as readonly unknown[]).includes(value)) return value as LimitsMode;
  throw new Error(`${where}: unknown limits ${JSON.stringify(value)} (expected ${LIMITS_MODES.map((m) => `'${m}'`).join(' or ')})`);
}

export interface DeviceOptions {
  /** Dawn options for Node, e.g. ['backend=opengles'] (see the `webgpu` package's README). */
  dawnFlags?: string[];
  powerPreference?: GPUPowerPreference;
  /**
   * Features not to use even where the adapter has them (tests run the kernels' fallback paths this way: no
   * subgroups).
   */
  without?: ('subgroups' | 'shader-f16')[];
  /** 'adapter' (default): the adapter's own limits; 'default': only the spec's defaults (see `LimitsMode`). */
  limits?: LimitsMode;
}

const NO_ADAPTER_HELP = [
  'No WebGPU adapter was found.',
  '- In Node on Linux without a GPU: install the Mesa 25 software Vulkan driver (lavapipe) with',
  '  `bash tools/install-lavapipe.sh` as root (Debian bookworm: bookworm-backports mesa-vulkan-drivers; the',
  '  bookworm Mesa 22 driver is refused by Dawn), and set XDG_RUNTIME_DIR (e.g. /tmp).',
  '- With a GPU: install its Vulkan driver (check with `vulkaninfo --summary`).',
  '- In a browser: use one with WebGPU enabled (Chrome/Edge 113+, or --enable-unsafe-webgpu).',
].join('\n');

/** Dawn's notes about two limits this project never uses, printed by native code on every adapter request. */
const DAWN_LIMIT_NOTE = /^Warning: maxDynamic(?:Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\n/gm;

type NodeFs = typeof import('node:fs');

/**
 * Calls `fn` with file descriptor 2 pointed at a temporary file, then writes what native code printed there back to
 * stderr without Dawn's two limit notes. Nothing in Dawn turns them off, and they go straight to fd 2, past
 * process.stderr. Only done where stderr can be reopened as it was, through /proc/self/fd (Linux): a terminal or a
 * pipe. Not a socket (Node's own child-process pipes; /proc cannot reopen those) nor a regular file (the reopened
 * descriptor would not share the original's offset with stdout in `>log 2>&1`): there, or if any step fails, `fn`
 * runs as is. `fn` must be synchronous: Dawn prints inside the call.
 */
function withoutDawnLimitNotes<T>(fs: NodeFs, tmpdir: string, fn: () => T): T {
  let kind;
  try {
    kind = fs.fstatSync(2);
  } catch {
    return fn();
  }
  // a regular file is left alone: a reopened descriptor would not share the original's offset (`>log 2>&1`)
  if (!kind.isCharacterDevice() && !kind.isFIFO()) return fn();
  const { O_WRONLY, O_NOCTTY, O_APPEND, O_RDWR, O_CREAT, O_EXCL } = fs.constants;
  let realErr = -1;
  let capture = -1;
  const file = `${tmpdir}/musicgen-dawn-${process.pid}-${Date.now()}.log`;
  try {
    realErr = fs.openSync('/proc/self/fd/2', O_WRONLY | O_NOCTTY | O_APPEND);
    capture = fs.openSync(file, O_RDWR | O_CREAT | O_EXCL, 0o600);
    fs.unlinkSync(file);
  } catch {
    for (const fd of [realErr, capture]) if (fd >= 0) fs.closeSync(fd);
    return fn();
  }
  /** Points fd 2 at the file `from` refers to: close 2, and open takes the lowest free number, 2. */
  const moveTo2 = (from: number): boolean => {
    fs.closeSync(2);
    const fd = fs.openSync(`/proc/self/fd/${from}`, from === capture ? O_WRONLY | O_APPEND : O_WRONLY | O_NOCTTY | O_APPEND);
    if (fd === 2) return true;
    fs.closeSync(fd);
    return false;
  };
  let swapped = false;
  try {
    swapped = moveTo2(capture);
    return fn();
  } finally {
    if (swapped) {
      moveTo2(realErr);
      const printed = fs.readFileSync(`/proc/self/fd/${capture}`, 'utf8').replace(DAWN_LIMIT_NOTE, '');
      if (printed) fs.writeSync(2, printed);
    }
    fs.closeSync(capture);
    fs.closeSync(realErr);
  }
}

async function nodeGpu(flags: string[]): Promise<{ gpu: GPU; instance: unknown; quiet: <T>(fn: () => T) => T }> {
  if (process.env.XDG_RUNTIME_DIR === undefined) process.env.XDG_RUNTIME_DIR = '/tmp'; // Mesa complains without it
  const moduleName = 'webgpu'; // kept in a variable so browser bundlers do not try to include Dawn
  const mod = (await import(/* @vite-ignore */ moduleName)) as {
    create: (flags: string[]) => GPU;
    globals: Record<string, unknown>;
  };
  const fsName = 'node:fs';
  const osName = 'node:os';
  const fs = (await import(/* @vite-ignore */ fsName)) as NodeFs;
  const { tmpdir } = (await import(/* @vite-ignore */ osName)) as typeof import('node:os');
  Object.assign(globalThis, mod.globals);
  const gpu = mod.create(flags);
  return { gpu, instance: gpu, quiet: (fn) => withoutDawnLimitNotes(fs, tmpdir(), fn) };
}

export async function requestGpu(opts: DeviceOptions = {}): Promise<GpuContext> {
  const inBrowser = typeof navigator !== 'undefined' && (navigator as Navigator).gpu !== undefined;
  const { gpu, instance, quiet } = inBrowser
    ? { gpu: (navigator as Navigator).gpu, instance: null, quiet: <T>(fn: () => T): T => fn() }
    : await nodeGpu(opts.dawnFlags ?? []);
  const adapter = await quiet(() => gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' }));
  if (!adapter) throw new Error(NO_ADAPTER_HELP);
  const wanted: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];
  const without = opts.without ?? [];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f) && !(without as string[]).includes(f));
  const limits = parseLimits(opts.limits ?? 'adapter');
  // 'adapter': ask for everything the adapter allows (larger bindings and buffers, more storage buffers per
  // kernel); 'default': ask for nothing, so the device has exactly the spec's defaults
  const L = adapter.limits;
  const requiredLimits: Record<string, number> = limits === 'default' ? {} : {
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
    limits,
    instance,
  };
}
