// The central directory of a zip archive read through ranged reads (APPNOTE.TXT 6.3: end of central directory,
// ZIP64 locator and record, central file headers, local file headers), for PyTorch's torch.save archives: their
// entries are stored uncompressed (and 64-byte aligned), so an entry is a byte range of the archive.
// Platform-neutral: works over any ByteSource (a file in Node, an HTTP URL in the browser).

import type { ByteSource } from './safetensors.js';

export interface ZipEntry {
  readonly name: string;
  /** 0 = stored; anything else is compressed. */
  readonly method: number;
  readonly size: number;
  readonly compressedSize: number;
  /** Offset of the entry's local header in the archive. */
  readonly localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;

/** True when the bytes start like a zip archive (a local file header). */
export function looksLikeZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
}

function u64(dv: DataView, at: number, what: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${what} ${v} is too large`);
  return Number(v);
}

export class ZipArchive {
  private readonly dataOffsets = new Map<string, Promise<number>>();

  private constructor(
    private readonly source: ByteSource,
    readonly label: string,
    readonly entries: ReadonlyMap<string, ZipEntry>,
    readonly size: number,
  ) {}

  static async open(source: ByteSource, label = source.label ?? 'zip archive'): Promise<ZipArchive> {
    const bad = (msg: string) => new Error(`${label}: ${msg}`);
    const size = await source.size();
    // The end record is 22 bytes plus a comment of up to 65535 bytes.
    const tailLen = Math.min(size, 22 + 0xffff);
    const tail = await source.read(size - tailLen, tailLen);
    const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === EOCD_SIG) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw bad('no end-of-central-directory record: not a zip archive, or truncated');
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || tv.getUint32(loc, true) !== ZIP64_LOCATOR_SIG) throw bad('ZIP64 archive without its locator');
      const recOffset = u64(tv, loc + 8, 'ZIP64 record offset');
      const rec = await source.read(recOffset, 56);
      const rv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
      if (rv.getUint32(0, true) !== ZIP64_EOCD_SIG) throw bad('bad ZIP64 end-of-central-directory record');
      count = u64(rv, 32, 'entry count');
      cdSize = u64(rv, 40, 'central directory size');
      cdOffset = u64(rv, 48, 'central directory offset');
    }
    if (cdOffset + cdSize > size) throw bad('the central directory lies past the end: the archive is truncated');
    const cd = await source.read(cdOffset, cdSize);
    const cv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
    const entries = new Map<string, ZipEntry>();
    const dec = new TextDecoder();
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdSize || cv.getUint32(p, true) !== CENTRAL_SIG) throw bad(`central directory entry ${i} is damaged`);
      const method = cv.getUint16(p + 10, true);
      let compressedSize = cv.getUint32(p + 20, true);
      let entrySize = cv.getUint32(p + 24, true);
      const nameLen = cv.getUint16(p + 28, true);
      const extraLen = cv.getUint16(p + 30, true);
      const commentLen = cv.getUint16(p + 32, true);
      let localHeaderOffset = cv.getUint32(p + 42, true);
      if (p + 46 + nameLen + extraLen > cdSize) throw bad(`central directory entry ${i} is damaged`);
      const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
      // ZIP64 extra field (id 1): the 64-bit values of the fields saturated above, in this order.
      for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
        const id = cv.getUint16(e, true);
        const len = cv.getUint16(e + 2, true);
        if (id === 1) {
          let q = e + 4;
          const next = (what: string) => {
            const v = u64(cv, q, what);
            q += 8;
            return v;
          };
          if (entrySize === 0xffffffff) entrySize = next('entry size');
          if (compressedSize === 0xffffffff) compressedSize = next('compressed size');
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = next('local header offset');
        }
        e += 4 + len;
      }
      entries.set(name, { name, method, size: entrySize, compressedSize, localHeaderOffset });
      p += 46 + nameLen + extraLen + commentLen;
    }
    return new ZipArchive(source, label, entries, size);
  }

  entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (!e) throw new Error(`${this.label}: no entry "${name}" in the archive`);
    return e;
  }

  /** Where a stored entry's bytes begin in the archive (its local header is read once). */
  dataOffset(name: string): Promise<number> {
    let p = this.dataOffsets.get(name);
    if (!p) {
      p = this.readDataOffset(this.entry(name));
      this.dataOffsets.set(name, p);
    }
    return p;
  }

  private async readDataOffset(e: ZipEntry): Promise<number> {
    if (e.method !== 0) {
      throw new Error(`${this.label}: entry "${e.name}" is compressed (method ${e.method}); only stored entries are read (torch.save never compresses)`);
    }
    const h = await this.source.read(e.localHeaderOffset, 30);
    const hv = new DataView(h.buffer, h.byteOffset, 30);
    if (hv.getUint32(0, true) !== LOCAL_SIG) throw new Error(`${this.label}: entry "${e.name}" has a damaged local header`);
    // The local extra field differs from the central one (torch pads it to align the data).
    const start = e.localHeaderOffset + 30 + hv.getUint16(26, true) + hv.getUint16(28, true);
    if (start + e.size > this.size) throw new Error(`${this.label}: entry "${e.name}" runs past the end: the archive is truncated`);
    return start;
  }

  /** A whole stored entry. */
  async read(name: string): Promise<Uint8Array<ArrayBuffer>> {
    const start = await this.dataOffset(name);
    return this.source.read(start, this.entry(name).size);
  }
}
