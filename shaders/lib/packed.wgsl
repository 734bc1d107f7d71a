// Reading a matrix stored in one of the weight formats of src/quant.ts (f16, q8, q4; f32 for the embedding table),
// shared by packed_gemv*.wgsl, packed_matmul.wgsl and embedding.wgsl. The matrix is one buffer bound twice: its
// data words (row-major, PER weights a word) and, from word p.scaleBase on, its scales' f32 bits as S (q8: one
// per row; q4: one per group of 32 along the row, which is exactly one lane load of 4 words; f32 and f16: none,
// S is bound and never read). FORMAT is set per format by the wrapper (`specialise`): every branch on it is a
// constant, so each format's pipeline holds only its own decode. Weights decode to f32 in registers; only they
// were rounded, every product and sum is f32.

const FORMAT: u32 = 0u; // 0 f32, 1 f16, 2 q8, 3 q4 (FORMAT_ID in src/kernels/packed.ts)
const F32 = 0u;
const F16 = 1u;
const Q8 = 2u;
const Q4 = 3u;
const PER = 1u << FORMAT; // weights a 32-bit word: 1, 2, 4, 8

// four int8s of a word, sign-extended, low byte first (unpack4xI8's result, written with shifts so that it needs
// no language extension)
fn q8x4(w: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(w) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}

// weights 4c…4c+3 (c < PER) of a lane load of 4 words, before any scale
fn weights4(wv: vec4<u32>, c: u32) -> vec4<f32> {
  if (FORMAT == F32) { return bitcast<vec4<f32>>(wv); }
  if (FORMAT == F16) { return vec4<f32>(unpack2x16float(wv[2u * c]), unpack2x16float(wv[2u * c + 1u])); }
  if (FORMAT == Q8) { return q8x4(wv[c]); }
  // q4: nibbles q + 8, low nibble first; word c/2, its low half for even c
  return vec4<f32>((vec4<u32>(wv[c / 2u]) >> (vec4<u32>(0u, 4u, 8u, 12u) + 16u * (c % 2u))) & vec4<u32>(15u)) - 8.0;
}

// weight `slot` (< PER) of a word, before any scale
fn weight1(word: u32, slot: u32) -> f32 {
  if (FORMAT == F32) { return bitcast<f32>(word); }
  if (FORMAT == F16) { return unpack2x16float(word)[slot]; }
  if (FORMAT == Q8) { return f32(extractBits(bitcast<i32>(word), slot * 8u, 8u)); }
  return f32(extractBits(word, slot * 4u, 4u)) - 8.0;
}

// q8: the scale of row n (applied once to the row's sum); 1 for the other formats
fn row_scale(n: u32) -> f32 {
  if (FORMAT == Q8) { return S[p.scaleBase + n]; }
  return 1.0;
}

// q4: the scale of lane load i (the group of 32 weights in words 4i…4i+3); 1 for the other formats
fn load_scale(i: u32) -> f32 {
  if (FORMAT == Q4) { return S[p.scaleBase + i]; }
  return 1.0;
}
