// The GPU limits of every command: `MUSICGEN_LIMITS=default` runs it with nothing above the WebGPU spec's default
// limits (what a page can count on; see LimitsMode in src/device.ts), `adapter` (or unset) with the adapter's own.

import { parseLimits, type LimitsMode } from '../device.js';
import { initRuntime, type Runtime } from '../runtime.js';

/** The limits `MUSICGEN_LIMITS` asks for (undefined when unset or empty); any other value is an error. */
export function limitsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): LimitsMode | undefined {
  const v = env.MUSICGEN_LIMITS;
  return v === undefined || v === '' ? undefined : parseLimits(v, 'MUSICGEN_LIMITS');
}

/** The process's runtime, created with the limits `MUSICGEN_LIMITS` asks for. */
export function cliRuntime(): Promise<Runtime> {
  return initRuntime({ limits: limitsFromEnv() });
}
