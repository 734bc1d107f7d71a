// The code sequence of a generation: tokens sampled on the GPU go into it through the delay pattern
// (shaders/delay_place.wgsl), and each step's input is read from it, so no token round-trips to the CPU.

import type { Tensor } from '../tensor.js';

/** seq[r, t] = forced[r, t] ≥ 0 ? forced[r, t] : sampled[r]; seq and forced are i32 [..., L], sampled i32 [...]. */
export function placeColumn(seq: Tensor, forced: Tensor, sampled: Tensor, t: number): void {
  const L = seq.shape[seq.rank - 1];
  const rows = seq.size / L;
  if (seq.dtype !== 'i32' || forced.dtype !== 'i32' || sampled.dtype !== 'i32' || forced.size !== seq.size || sampled.size !== rows) {
    throw new Error(`placeColumn: seq ${seq}, forced ${forced}, sampled ${sampled} do not fit`);
  }
  if (t < 0 || t >= L) throw new Error(`placeColumn: step ${t} outside [0, ${L})`);
  seq.rt.dispatch({
    shader: 'delay_place',
    params: { rows, length: L, t },
    bindings: [forced.binding(), sampled.binding(), seq.binding()],
    workgroups: [Math.ceil(rows / 64)],
  });
}
