// Embedding lookups (shaders/embedding.wgsl) and their table gradients (shaders/embedding_bwd.wgsl): a single
// table, and MusicGen's input, the sum of K codebook embeddings from stacked tables. The backward is a
// deterministic scatter-add (counting sort of the positions by table row, no float atomics). Ids outside
// 0…V−1 read nothing: they embed to zeros and get no gradient.

import { Tensor, shapeStr } from '../tensor.js';
import { record } from '../autograd.js';
import { specialise } from '../runtime.js';
import { launch1d } from './elementwise.js';
import { FORMAT_ID, PackedMatrix, type Matrix } from './packed.js';

/**
 * Σ_k tables[k, ids[b, k, t]] for tables [K, V, D] (f32, or packed: read as they are stored) and ids [B, K, T]
 * → [B, T, D] (shapes already checked).
 */
function lookupSum(tables: Matrix, ids: Tensor, B: number, K: number, V: number, T: number, D: number): Tensor {
  const rt = tables.rt;
  const out = Tensor.empty([B, T, D], 'f32', rt);
  if (out.size > 0) {
    // one buffer bound as the words and as the scales (f32 and f16 have none: bound, never read)
    const packed = tables instanceof PackedMatrix ? tables : null;
    const words = packed ? packed.words : tables as Tensor;
    rt.dispatch({
      ...specialise('embedding', 'FORMAT', FORMAT_ID[packed ? packed.format : 'f32']),
      params: { n: out.size, K, V, T, D, scaleBase: packed ? packed.scaleBase : 0 },
      bindings: [words.binding(), words.binding(), ids.binding(), out.binding()],
      workgroups: launch1d(rt, out.size),
    });
  }
  return out;
}

/** The gradient of `lookupSum` for its tables: dOut [B, T, D] → [K, V, D]. */
function lookupSumBackward(dOut: Tensor, ids: Tensor, B: number, K: number, T: number, V: number, D: number): Tensor {
  const rt = dOut.rt;
  const R = K * V;
  const grad = Tensor.empty([K, V, D], 'f32', rt);
  if (grad.size === 0) return grad;
  const offsets = Tensor.empty([R + 1], 'i32', rt);
  const list = Tensor.empty([Math.max(1, B * K * T)], 'i32', rt);
  const bindings = [ids.binding(), dOut.binding(), offsets.binding(), list.binding(), grad.binding()];
  const dims = { B, K, T, V, D };
  const wg64 = (n: number): [number, number] => rt.grid(Math.ceil(n / 64));
  rt.dispatch({ shader: 'embedding_bwd', params: { mode: 0, ...dims }, bindings, workgroups: wg64(R) });
  rt.dispatch({ shader: 'embedding_bwd', params: { mode: 1, ...dims }, bindings, workgroups: [1] });
  rt.dispatch({ shader: 'embedding_bwd', params: { mode: 2, ...dims }, bindings, workgroups: wg64(R) });
  rt.dispatch({ shader: 'embedding_bwd', params: { mode: 3, ...dims }, bindings, workgroups: wg64(R * D) });
  offsets.dispose();
  list.dispose();
  return grad;
}

/** table [V, D], ids i32 of any shape → [...ids.shape, D]. Differentiable in an f32 table; a packed one is frozen. */
export function embedding(table: Matrix, ids: Tensor): Tensor {
  const packed = table instanceof PackedMatrix;
  if (table.rank !== 2 || !(packed || table.dtype === 'f32')) throw new Error(`embedding: table must be f32 or packed [V, D], got ${table}`);
  if (ids.dtype !== 'i32') throw new Error(`embedding: ids must be i32, got ${ids.dtype}`);
  const [V, D] = table.shape;
  const N = ids.size;
  const out = lookupSum(table, ids, 1, 1, V, N, D);
  const y = out.reshape([...ids.shape, D]);
  out.dispose();
  if (packed) return y;
  return record('embedding', y, [table, ids], (g) => {
    const grad = lookupSumBackward(g, ids, 1, 1, N, V, D);
    return [grad.reshape([V, D]), null];
  });
}

/**
 * Σ_k tables[k][ids[b, k, t]] for tables [K, V, D] (stacked) and ids i32 [B, K, T] → [B, T, D]: MusicGen's
 * input embedding of K codebook streams. Differentiable in f32 tables; packed ones are frozen.
 */
export function embeddingSum(tables: Matrix, ids: Tensor): Tensor {
  const packed = tables instanceof PackedMatrix;
  if (tables.rank !== 3 || !(packed || tables.dtype === 'f32')) {
    throw new Error(`embeddingSum: tables must be f32 or packed [K, V, D], got ${tables}`);
  }
  const [K, V, D] = tables.shape;
  if (ids.dtype !== 'i32' || ids.rank !== 3 || ids.shape[1] !== K) {
    throw new Error(`embeddingSum: ids must be i32 [B, ${K}, T], got ${ids.dtype} ${shapeStr(ids)}`);
  }
  const [B, , T] = ids.shape;
  const out = lookupSum(tables, ids, B, K, V, T, D);
  if (packed) return out;
  return record('embeddingSum', out, [tables, ids], (g) => [lookupSumBackward(g, ids, B, K, T, V, D), null]);
}
