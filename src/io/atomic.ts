// Writes a file so that readers see either the old file or the complete new one, never half of it:
// write a temporary file beside it, flush it, then rename over the target.

import { open, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

/** `data` whole, or streamed chunk by chunk (a multi-GB checkpoint is never held in memory). */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string | Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) await fh.writeFile(data);
    else for await (const chunk of data) await fh.write(chunk);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}
