// Half-precision number formats (IEEE binary16 and bfloat16) on the CPU: exact conversions to f32 (every f16
// and bf16 value is representable in f32) and round-to-nearest-even back. Used by the tensor (reading f16
// tensors), the safetensors reader and the checkpoint writer, so it sits at the bottom of the layers.

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** IEEE binary16 bits -> number, including subnormals, ±inf and NaN. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero / subnormal
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** number -> IEEE binary16 bits, rounding to nearest even (as numpy / torch do). */
export function f32ToF16Bits(v: number): number {
  scratchF32[0] = v;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    // f16 subnormal: bits = significand * 2^(e - 14), with the implicit leading 1 made explicit.
    const shift = 14 - e;
    if (shift > 24) return sign; // below half the smallest subnormal
    const full = mant | 0x800000;
    let r = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r; // r may carry into 0x400, the smallest normal: still correct
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // carry may reach inf: correct
  return sign | h;
}

/** bfloat16 bits -> number. */
export function bf16ToF32(b: number): number {
  scratchU32[0] = (b & 0xffff) << 16;
  return scratchF32[0]!;
}

/** number -> bfloat16 bits, rounding to nearest even. */
export function f32ToBf16Bits(v: number): number {
  scratchF32[0] = v;
  const x = scratchU32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

let f16Table: Float32Array | undefined;
/** All 65536 f16 values, built once: a lookup beats per-element arithmetic on big tensors. */
export function getF16Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}
