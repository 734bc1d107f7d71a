// Writes a file so that readers see either the old file or the complete new one, never half of it:
// write a temporary file beside it, flush it, then rename over the target.

import { open, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

type Data = Uint8Array | string | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** Writes and flushes `data` to a temporary file beside `path`; returns its name (nothing is left on failure). */
async function writeTemp(path: string, data: Data): Promise<string> {
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
  return tmp;
}

/** `data` whole, or streamed chunk by chunk (a multi-GB checkpoint is never held in memory). */
export async function writeFileAtomic(path: string, data: Data): Promise<void> {
  await writeFilesAtomic([{ path, data }]);
}

/**
 * Writes several files, all or none: every one goes to a temporary file first, and they are renamed into
 * place only when all were written; a failure removes what this call wrote.
 */
export async function writeFilesAtomic(files: { path: string; data: Data }[]): Promise<void> {
  const temps: string[] = [];
  const placed: string[] = [];
  try {
    for (const f of files) temps.push(await writeTemp(f.path, f.data));
    for (let i = 0; i < files.length; i++) {
      await rename(temps[i], files[i].path);
      placed.push(files[i].path);
    }
  } catch (e) {
    for (const t of temps.slice(placed.length)) await unlink(t).catch(() => undefined);
    for (const p of placed) await unlink(p).catch(() => undefined);
    throw e;
  }
}
