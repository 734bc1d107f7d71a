// Shared by the headless-Chromium tests of the browser bundle: Debian's chromium with WebGPU on its SwiftShader
// adapter (flags from /work/shared/ENVIRONMENT.md), and the bundle built as `npm run build:browser` builds it.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=native',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Builds dist/browser/ (the shaders are embedded first). */
export function buildBundle(): void {
  execFileSync(process.execPath, [join(ROOT, 'tools', 'embed-shaders.mjs')], { cwd: ROOT, stdio: 'pipe' });
  execFileSync(process.execPath, [join(ROOT, 'tools', 'build-browser.mjs'), '--quiet'], { cwd: ROOT, stdio: 'pipe' });
}
