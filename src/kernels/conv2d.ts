// 2-D convolution and transposed convolution over [B, C, H, W] (PyTorch semantics, groups = 1, dilation 1),
// forward only (HTDemucs's frequency branch runs inference). Both are a matmul on the tiled matmul kernel plus
// a gather: conv2d = weight · im2col(x) (shaders/im2col.wgsl), convTranspose2d = col2im(weightᵀ · x)
// (shaders/col2im.wgsl). 1×1 convolutions skip the im2col.

import { Tensor, shapeStr, checkF32 } from '../tensor.js';
import { launch1d, add } from './elementwise.js';
import { matmul } from './matmul.js';
import { concat } from './shape.js';

/** The most bytes of im2col columns made at once. */
const COLS_BYTES = 64 << 20;

export type Pair = number | readonly [number, number];

const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

function checkArgs(name: string, x: Tensor, weight: Tensor, bias?: Tensor): void {
  checkF32(name, x, weight, bias);
  if (x.rank !== 4) throw new Error(`${name}: x must be [B, C, H, W], got ${shapeStr(x)}`);
  if (weight.rank !== 4) throw new Error(`${name}: weight must be 4-D, got ${shapeStr(weight)}`);
  if (bias && bias.rank !== 1) throw new Error(`${name}: bias must be 1-D, got ${shapeStr(bias)}`);
  if (x.requiresGrad || weight.requiresGrad || bias?.requiresGrad) throw new Error(`${name}: forward only (no backward)`);
}

export interface Conv2dOptions {
  stride?: Pair;
  /** zeros on both sides of each axis */
  padding?: Pair;
  /** The most bytes of im2col columns made at once (default 64 MiB, at most the binding limit). */
  columnBytes?: number;
}

/**
 * PyTorch's conv2d: x [B, Cin, H, W], weight [Cout, Cin, kh, kw], bias [Cout] → [B, Cout, Ho, Wo] with
 * Ho = ⌊(H + 2·ph − kh) / sh⌋ + 1 (likewise Wo). Not differentiable.
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor, opts: Conv2dOptions = {}): Tensor {
  checkArgs('conv2d', x, weight, bias);
  const [sh, sw] = pair(opts.stride ?? 1);
  const [ph, pw] = pair(opts.padding ?? 0);
  const [B, Cin, H, W] = x.shape;
  const [Cout, Cw, kh, kw] = weight.shape;
  if (Cw !== Cin) throw new Error(`conv2d: x ${shapeStr(x)} does not fit weight ${shapeStr(weight)}`);
  if (bias && bias.shape[0] !== Cout) throw new Error(`conv2d: bias ${shapeStr(bias)} for ${Cout} output channels`);
  for (const v of [sh, sw]) if (!Number.isInteger(v) || v < 1) throw new Error(`conv2d: stride ${v}`);
  for (const v of [ph, pw]) if (!Number.isInteger(v) || v < 0) throw new Error(`conv2d: padding ${v}`);
  const Ho = Math.floor((H + 2 * ph - kh) / sh) + 1;
  const Wo = Math.floor((W + 2 * pw - kw) / sw) + 1;
  if (Ho < 1 || Wo < 1) throw new Error(`conv2d: input ${shapeStr(x)} is smaller than the kernel ${kh}×${kw}`);
  const rt = x.rt;
  const K = Cin * kh * kw;
  const w2 = weight.reshape([Cout, K]);
  let y: Tensor;
  if (kh === 1 && kw === 1 && sh === 1 && sw === 1 && ph === 0 && pw === 0) {
    const x3 = x.reshape([B, Cin, H * W]);
    y = matmul(w2, x3); // [B, Cout, H·W]
    x3.dispose();
  } else {
    // im2col in bands of output rows, each within the storage binding limit (a 3×3 conv over HTDemucs's first
    // frequency layer would need ~300 MB of columns at once); the bands' outputs are joined along the rows
    const maxCols = Math.min(rt.limits.maxStorageBufferBindingSize, opts.columnBytes ?? COLS_BYTES) / 4;
    const band = Math.max(1, Math.min(Ho, Math.floor(maxCols / (B * K * Wo))));
    const parts: Tensor[] = [];
    for (let h0 = 0; h0 < Ho; h0 += band) {
      const rows = Math.min(band, Ho - h0);
      const cols = Tensor.empty([B, K, rows * Wo], 'f32', rt);
      rt.dispatch({
        shader: 'im2col',
        params: { n: cols.size, Cin, H, W, kh, kw, sh, sw, ph, pw, Ho: rows, Wo, h0 },
        bindings: [x.binding(), cols.binding()],
        workgroups: launch1d(rt, cols.size),
      });
      const part = matmul(w2, cols); // [B, Cout, rows·Wo]
      cols.dispose();
      parts.push(part.reshape([B, Cout, rows, Wo]));
      part.dispose();
    }
    if (parts.length === 1) {
      y = parts[0]!;
    } else {
      y = concat(parts, 2);
      for (const p of parts) p.dispose();
    }
  }
  w2.dispose();
  const y4 = y.reshape([B, Cout, Ho, Wo]);
  y.dispose();
  if (!bias) return y4;
  const b = bias.reshape([Cout, 1, 1]);
  const out = add(y4, b);
  b.dispose();
  y4.dispose();
  return out;
}

/**
 * PyTorch's conv_transpose2d without padding: x [B, Cin, H, W], weight [Cin, Cout, kh, kw], bias [Cout] →
 * [B, Cout, (H − 1)·sh + kh, (W − 1)·sw + kw]. Not differentiable.
 */
export function convTranspose2d(x: Tensor, weight: Tensor, bias?: Tensor, opts: { stride?: Pair } = {}): Tensor {
  checkArgs('convTranspose2d', x, weight, bias);
  const [sh, sw] = pair(opts.stride ?? 1);
  for (const v of [sh, sw]) if (!Number.isInteger(v) || v < 1) throw new Error(`convTranspose2d: stride ${v}`);
  const [B, Cin, H, W] = x.shape;
  const [Cw, Cout, kh, kw] = weight.shape;
  if (Cw !== Cin) throw new Error(`convTranspose2d: x ${shapeStr(x)} does not fit weight ${shapeStr(weight)}`);
  if (bias && bias.shape[0] !== Cout) throw new Error(`convTranspose2d: bias ${shapeStr(bias)} for ${Cout} output channels`);
  const rt = x.rt;
  const Ho = (H - 1) * sh + kh;
  const Wo = (W - 1) * sw + kw;
  const w2 = weight.reshape([Cin, Cout * kh * kw]);
  const x3 = x.reshape([B, Cin, H * W]);
  const cols = matmul(w2, x3, { transA: true }); // [B, Cout·kh·kw, H·W]
  w2.dispose();
  x3.dispose();
  const y = Tensor.empty([B, Cout, Ho, Wo], 'f32', rt);
  rt.dispatch({
    shader: 'col2im',
    params: { n: y.size, Cout, H, W, kh, kw, sh, sw, Ho, Wo, flags: bias ? 1 : 0 },
    bindings: [cols.binding(), (bias ?? cols).binding(), y.binding()],
    workgroups: launch1d(rt, y.size),
  });
  cols.dispose();
  return y;
}
