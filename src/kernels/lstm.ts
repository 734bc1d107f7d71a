// One layer of PyTorch's nn.LSTM (time-major, gate order i, f, g, o) with backpropagation through time.
// The input projection of all steps is one matmul; the recurrence is one dispatch per step (shaders/lstm.wgsl),
// all recorded into the one encoder. The backward runs one dispatch per step in reverse
// (shaders/lstm_backward.wgsl) and then gets every weight, bias and input gradient from matmuls.

import { Tensor, tidy, shapeStr, checkF32 } from '../tensor.js';
import { isRecording, noGrad, record } from '../autograd.js';
import { add, sumTo } from './elementwise.js';
import { matmul } from './matmul.js';
import { narrow, reshape, transpose } from './shape.js';

export interface LstmResult {
  /** [T, B, H]: h_t for every step */
  y: Tensor;
  /** [B, H]: the last hidden state */
  h: Tensor;
  /** [B, H]: the last cell state */
  c: Tensor;
}


/**
 * One LSTM layer as PyTorch's nn.LSTM (batch_first = false): x [T, B, I], weightIh [4H, I], weightHh [4H, H],
 * biasIh [4H], biasHh [4H], optional h0 / c0 [B, H] (or [1, B, H]; zeros when absent) → { y [T, B, H],
 * h [B, H], c [B, H] }. Differentiable in everything (BPTT); gradients reach h and c as well as y.
 */
export function lstm(
  x: Tensor, weightIh: Tensor, weightHh: Tensor, biasIh: Tensor, biasHh: Tensor, h0?: Tensor, c0?: Tensor,
): LstmResult {
  checkF32('lstm', x, weightIh, weightHh, biasIh, biasHh, h0, c0);
  if (x.rank !== 3) throw new Error(`lstm: x must be [T, B, I], got ${shapeStr(x)}`);
  const [T, B, I] = x.shape;
  if (weightHh.rank !== 2 || weightHh.shape[0] !== 4 * weightHh.shape[1]) {
    throw new Error(`lstm: weightHh must be [4H, H], got ${shapeStr(weightHh)}`);
  }
  const H = weightHh.shape[1];
  const H4 = 4 * H;
  if (weightIh.rank !== 2 || weightIh.shape[0] !== H4 || weightIh.shape[1] !== I) {
    throw new Error(`lstm: weightIh ${shapeStr(weightIh)} should be [${H4}, ${I}]`);
  }
  for (const [name, b] of [['biasIh', biasIh], ['biasHh', biasHh]] as const) {
    if (b.rank !== 1 || b.shape[0] !== H4) throw new Error(`lstm: ${name} ${shapeStr(b)} should be [${H4}]`);
  }
  for (const [name, s] of [['h0', h0], ['c0', c0]] as const) {
    if (s && (s.size !== B * H || s.shape[s.rank - 1] !== H || s.shape[s.rank - 2] !== B || s.rank > 3)) {
      throw new Error(`lstm: ${name} ${shapeStr(s)} should be [${B}, ${H}]`);
    }
  }
  if (T < 1 || B < 1 || H < 1) throw new Error(`lstm: empty input ${shapeStr(x)} or hidden size ${H}`);
  const rt = x.rt;
  const inputs = [x, weightIh, weightHh, biasIh, biasHh, ...(h0 ? [h0] : []), ...(c0 ? [c0] : [])];
  const wantGrad = isRecording() && inputs.some((t) => t.requiresGrad);

  // one sequence at inference (EnCodec): the subgroup step kernel reads W_hh as stored, contiguously
  const single = !wantGrad && B === 1 && H % 4 === 0 && rt.subgroups;
  // x·Wihᵀ + (bih + bhh) for all steps at once, and Whhᵀ for the general step kernel's coalesced reads (the
  // single-sequence kernel reads W_hh as stored: no transposed copy, 16 MiB per EnCodec layer, is made for it)
  const { xp, wt } = tidy(() => noGrad(() => ({
    xp: matmul(x.reshape([T * B, I]), weightIh, { transB: true, bias: add(biasIh, biasHh) }),
    wt: single ? null : transpose(weightHh, 0, 1),
  })));
  // States with the initial one in row 0 (h0, h_1 … h_T), so every step reads row t and writes row t + 1. With
  // gradients the state buffer also carries c_T in a last row, and y, h and c are views cut from it: one
  // backward then sees the gradients of all three together.
  const rowBytes = B * H * 4;
  const out = Tensor.empty([wantGrad ? T + 2 : T + 1, B, H], 'f32', rt);
  const cs = Tensor.empty([T + 1, B, H], 'f32', rt);
  const gates = Tensor.empty([T, B, H4], 'f32', rt);
  if (h0) rt.copy(h0.buffer, 0, out.buffer, 0, rowBytes);
  else rt.clear(out.buffer, rowBytes);
  if (c0) rt.copy(c0.buffer, 0, cs.buffer, 0, rowBytes);
  else rt.clear(cs.buffer, rowBytes);
  const grid: [number, number] = [Math.ceil(H / 32), Math.ceil(B / 4)];
  const sgs = rt.maxSubgroupSize;
  for (let t = 0; t < T; t++) {
    if (single) {
      rt.dispatch({
        shader: 'lstm_step_b1',
        params: { t, H },
        bindings: [xp.binding(), weightHh.binding(), out.binding(), cs.binding()],
        workgroups: rt.grid(Math.ceil((H * sgs) / 64)), // one subgroup per hidden unit
      });
      continue;
    }
    rt.dispatch({
      shader: 'lstm',
      params: { t, B, H },
      bindings: [xp.binding(), wt!.binding(), out.binding(), cs.binding(), gates.binding()],
      workgroups: grid,
    });
  }
  xp.dispose();
  wt?.dispose();

  if (!wantGrad) {
    const y = Tensor.empty([T, B, H], 'f32', rt);
    const h = Tensor.empty([B, H], 'f32', rt);
    const c = Tensor.empty([B, H], 'f32', rt);
    rt.copy(out.buffer, rowBytes, y.buffer, 0, T * rowBytes);
    rt.copy(out.buffer, T * rowBytes, h.buffer, 0, rowBytes);
    rt.copy(cs.buffer, T * rowBytes, c.buffer, 0, rowBytes);
    for (const t of [out, cs, gates]) t.dispose();
    return { y, h, c };
  }

  rt.copy(cs.buffer, T * rowBytes, out.buffer, (T + 1) * rowBytes, rowBytes);
  record('lstm', out, inputs, (gOut) => {
    const da = Tensor.empty([T, B, H4], 'f32', rt);
    const dc = Tensor.empty([B, H], 'f32', rt);
    rt.copy(gOut.buffer, (T + 1) * rowBytes, dc.buffer, 0, rowBytes); // dc_T
    for (let t = T - 1; t >= 0; t--) {
      rt.dispatch({
        shader: 'lstm_backward',
        params: { t, T, B, H },
        bindings: [weightHh.binding(), gOut.binding(), gates.binding(), cs.binding(), da.binding(), dc.binding()],
        workgroups: grid,
      });
    }
    const da2 = da.reshape([T * B, H4]);
    const gx = x.requiresGrad ? matmul(da2, weightIh).reshape(x.shape) : null;
    const gWih = weightIh.requiresGrad ? matmul(da2, x.reshape([T * B, I]), { transA: true }) : null;
    // h_{t−1} for every step is the state buffer's rows 0 … T − 1
    const gWhh = weightHh.requiresGrad
      ? matmul(da2, narrow(out, 0, 0, T).reshape([T * B, H]), { transA: true })
      : null;
    const gb = biasIh.requiresGrad || biasHh.requiresGrad ? sumTo(da2, [H4]) : null;
    // the two biases get equal gradients, but each its own tensor
    let gb2: Tensor | null = null;
    if (gb && biasHh.requiresGrad) {
      gb2 = Tensor.empty([H4], 'f32', rt);
      rt.copy(gb.buffer, 0, gb2.buffer, 0, H4 * 4);
    }
    const grads: (Tensor | null)[] = [gx, gWih, gWhh, biasIh.requiresGrad ? gb : null, gb2];
    if (h0) grads.push(h0.requiresGrad ? matmul(narrow(da, 0, 0, 1).reshape([B, H4]), weightHh).reshape(h0.shape) : null);
    if (c0) grads.push(c0.requiresGrad ? dc.reshape(c0.shape) : null);
    return grads;
  }, [cs, gates]);
  // the graph holds its own references now
  cs.dispose();
  gates.dispose();

  const result = tidy(() => ({
    y: narrow(out, 0, 1, T),
    h: reshape(narrow(out, 0, T, 1), [B, H]),
    c: reshape(narrow(out, 0, T + 1, 1), [B, H]),
  }));
  out.dispose();
  return result;
}
