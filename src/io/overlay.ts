// A TensorReader over another that serves some of its tensors itself (the audiocraft LM weights, a LoRA
// adapter's merged matrices) and passes every other call through: the names, metadata and the rest of the
// tensors stay the base's.

import type { Bytes, TensorInfo, TensorReader } from './safetensors.js';

export abstract class OverlayReader implements TensorReader {
  abstract readonly label: string;

  constructor(protected readonly base: TensorReader) {}

  /** Whether the overlay serves `name` itself. */
  protected abstract covers(name: string): boolean;
  protected abstract ownInfo(name: string): TensorInfo;
  protected abstract ownRaw(name: string): Promise<Bytes>;
  protected abstract ownF32(name: string): Promise<Float32Array<ArrayBuffer>>;
  protected abstract ownI32(name: string): Promise<Int32Array<ArrayBuffer>>;
  /** Releases what the overlay holds (the base is closed with it). */
  protected abstract closeOwn(): Promise<void>;

  get metadata(): Readonly<Record<string, unknown>> {
    return this.base.metadata;
  }

  names(): string[] {
    return this.base.names();
  }

  has(name: string): boolean {
    return this.base.has(name);
  }

  info(name: string): TensorInfo {
    return this.covers(name) ? this.ownInfo(name) : this.base.info(name);
  }

  readRaw(name: string): Promise<Bytes> {
    return this.covers(name) ? this.ownRaw(name) : this.base.readRaw(name);
  }

  /** An overlay tensor comes in one piece (it is made whole anyway). */
  readRawChunks(name: string, chunkBytes: number): AsyncGenerator<Bytes, void, undefined> {
    if (!this.covers(name)) return this.base.readRawChunks(name, chunkBytes);
    return (async function* (self) {
      yield await self.ownRaw(name);
    })(this);
  }

  readF32(name: string): Promise<Float32Array<ArrayBuffer>> {
    return this.covers(name) ? this.ownF32(name) : this.base.readF32(name);
  }

  readI32(name: string): Promise<Int32Array<ArrayBuffer>> {
    return this.covers(name) ? this.ownI32(name) : this.base.readI32(name);
  }

  async close(): Promise<void> {
    await Promise.all([this.base.close(), this.closeOwn()]);
  }
}
