// Where this package's own files are (package.json, web/, dist/browser/), from source (src/io/) or compiled
// (dist/node/io/) alike: the nearest folder above this module whose package.json names this package. Node only.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): { root: string; version: string } {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'musicgen-webgpu') return { root: dir, version: pkg.version ?? '0.0.0' };
    } catch {
      // no package.json here (or not readable): keep going up
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`musicgen-webgpu: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

const found = findRoot();
/** The package's folder: the repository checkout, or node_modules/musicgen-webgpu when installed. */
export const PACKAGE_ROOT = found.root;
export const PACKAGE_VERSION = found.version;
