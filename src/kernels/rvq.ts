// EnCodec's residual vector quantiser (shaders/rvq.wgsl, shaders/rvq_decode.wgsl), as transformers'
// EncodecResidualVectorQuantizer: encode picks, stage by stage, the codebook entry nearest to the residual
// (the same −(|x|² − 2x·e + |e|²) argmax, first on ties) and subtracts it; decode sums the selected entries.
// Both work in the EnCodec encoder/decoder layout [B, D, T]. No backward: EnCodec is frozen.

import { Tensor, shapeStr } from '../tensor.js';
import { specialise } from '../runtime.js';
import { launch1d } from './elementwise.js';

/** Codebook dims the encoder is compiled for go up to this (the residual lives in registers). */
const MAX_CODEBOOK_DIM = 512;


function checkCodebooks(name: string, codebooks: Tensor): [number, number, number] {
  if (codebooks.dtype !== 'f32' || codebooks.rank !== 3) {
    throw new Error(`${name}: codebooks must be f32 [K, V, D], got ${codebooks.dtype} ${shapeStr(codebooks)}`);
  }
  const [K, V, D] = codebooks.shape;
  return [K, V, D];
}

/**
 * x f32 [B, D, T] → codes i32 [B, nQ, T] with codebooks [K, V, D], using the first nQ (default K) stages.
 */
export function rvqEncode(x: Tensor, codebooks: Tensor, nQ?: number): Tensor {
  const [K, V, D] = checkCodebooks('rvqEncode', codebooks);
  const n = nQ ?? K;
  if (!Number.isInteger(n) || n < 1 || n > K) throw new Error(`rvqEncode: nQ = ${n} with ${K} codebooks`);
  if (x.dtype !== 'f32' || x.rank !== 3 || x.shape[1] !== D) {
    throw new Error(`rvqEncode: x must be f32 [B, ${D}, T], got ${x.dtype} ${shapeStr(x)}`);
  }
  if (D > MAX_CODEBOOK_DIM) throw new Error(`rvqEncode: codebook dim ${D} > ${MAX_CODEBOOK_DIM}`);
  if (V < 1) throw new Error('rvqEncode: empty codebooks');
  const [B, , T] = x.shape;
  const rt = x.rt;
  const codes = Tensor.empty([B, n, T], 'i32', rt);
  if (B * T === 0) return codes;
  rt.dispatch({
    // the codebook dim is compiled in so the residual has a fixed-size register array
    ...specialise('rvq', 'D', D),
    params: { B, T, V, nQ: n },
    bindings: [x.binding(), codebooks.binding(), codes.binding()],
    workgroups: rt.grid(Math.ceil((B * T) / 64)),
  });
  return codes;
}

/** codes i32 [B, nQ, T] (nQ ≤ K; codes outside 0…V−1 add nothing) with codebooks [K, V, D] → [B, D, T]. */
export function rvqDecode(codes: Tensor, codebooks: Tensor): Tensor {
  const [K, V, D] = checkCodebooks('rvqDecode', codebooks);
  if (codes.dtype !== 'i32' || codes.rank !== 3 || codes.shape[1] > K) {
    throw new Error(`rvqDecode: codes must be i32 [B, ≤ ${K}, T], got ${codes.dtype} ${shapeStr(codes)}`);
  }
  const [B, nQ, T] = codes.shape;
  const rt = codes.rt;
  const out = Tensor.empty([B, D, T], 'f32', rt);
  if (out.size === 0) return out;
  rt.dispatch({
    shader: 'rvq_decode',
    params: { n: out.size, K: nQ, V, T, D },
    bindings: [codebooks.binding(), codes.binding(), out.binding()],
    workgroups: launch1d(rt, out.size),
  });
  return out;
}
