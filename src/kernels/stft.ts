// FFT, STFT and inverse STFT on the GPU (shaders/fft.wgsl, stft_*.wgsl, istft_*.wgsl), with torch.stft /
// torch.istft's semantics as Demucs calls them (demucs/spec.py): periodic Hann window of n_fft, centre
// (reflect) padding, `normalized=True` (n^−½ both ways), one-sided spectrum. Forward only. The transform is a
// radix-2 Stockham FFT, so n_fft must be a power of two (Demucs uses 4096).

import { Tensor, keep, shapeStr, checkF32 } from '../tensor.js';
import type { Runtime } from '../runtime.js';
import { launch1d } from './elementwise.js';
import { pad1d } from './conv.js';

/** Per runtime and size: the periodic Hann window [n] and the twiddles e^(−2πi·t/n), t < n/2, as [n/2, 2]. */
const tables = new WeakMap<Runtime, Map<string, Tensor>>();

function table(rt: Runtime, key: string, make: () => { data: Float32Array; shape: number[] }): Tensor {
  let m = tables.get(rt);
  if (!m) tables.set(rt, (m = new Map()));
  let t = m.get(key);
  if (!t || t.disposed) {
    const { data, shape } = make();
    t = keep(Tensor.from(data, shape, 'f32', rt));
    m.set(key, t);
  }
  return t;
}

/** torch.hann_window(n) (periodic): 0.5 − 0.5·cos(2πi/n). */
export function hannWindow(rt: Runtime, n: number): Tensor {
  return table(rt, `hann${n}`, () => {
    const w = new Float32Array(n);
    for (let i = 0; i < n; i++) w[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n);
    return { data: w, shape: [n] };
  });
}

function twiddles(rt: Runtime, n: number): Tensor {
  return table(rt, `tw${n}`, () => {
    const w = new Float32Array(n); // n/2 complex values
    for (let t = 0; t < n / 2; t++) {
      w[2 * t] = Math.cos((2 * Math.PI * t) / n);
      w[2 * t + 1] = -Math.sin((2 * Math.PI * t) / n);
    }
    return { data: w, shape: [Math.max(1, n / 2), 2] };
  });
}

function checkPow2(name: string, n: number): void {
  if (!Number.isInteger(n) || n < 2 || (n & (n - 1)) !== 0) throw new Error(`${name}: n_fft ${n} must be a power of two ≥ 2`);
}

/**
 * In-place-style FFT of complex rows x [..., n, 2] (real, imaginary interleaved) → a new tensor of the same
 * shape. `inverse` uses the conjugate twiddles and does not divide by n. Consumes nothing: x is left as is.
 */
export function fft(x: Tensor, inverse = false): Tensor {
  checkF32('fft', x);
  if (x.rank < 2 || x.shape[x.rank - 1] !== 2) throw new Error(`fft: x must be [..., n, 2], got ${shapeStr(x)}`);
  const n = x.shape[x.rank - 2];
  checkPow2('fft', n);
  const rt = x.rt;
  const rows = x.size / (2 * n);
  const tw = twiddles(rt, n);
  let src = x;
  for (let Ns = 1; Ns < n; Ns *= 2) {
    const dst = Tensor.empty(x.shape, 'f32', rt);
    rt.dispatch({
      shader: 'fft',
      params: { n_bfly: (rows * n) / 2, n, Ns, conj: inverse ? 1 : 0 },
      bindings: [src.binding(), tw.binding(), dst.binding()],
      workgroups: launch1d(rt, (rows * n) / 2),
    });
    if (src !== x) src.dispose();
    src = dst;
  }
  return src;
}

/**
 * torch.stft(x, n, hop, window=hann_window(n), center=True, pad_mode='reflect', normalized=True,
 * return_complex=True) for x [R, L] → [R, 2, n/2 + 1, 1 + ⌊L/hop⌋]: real parts in plane 0, imaginary in 1.
 */
export function stft(x: Tensor, n: number, hop: number): Tensor {
  checkF32('stft', x);
  checkPow2('stft', n);
  if (x.rank !== 2) throw new Error(`stft: x must be [R, L], got ${shapeStr(x)}`);
  if (!Number.isInteger(hop) || hop < 1) throw new Error(`stft: hop ${hop}`);
  const [R, L] = x.shape;
  if (L <= n / 2) throw new Error(`stft: signal of ${L} samples is too short for reflect padding by ${n / 2}`);
  const rt = x.rt;
  const xp = pad1d(x, n / 2, n / 2, 'reflect');
  const frames = 1 + Math.floor(L / hop);
  const fr = Tensor.empty([R, frames, n, 2], 'f32', rt);
  rt.dispatch({
    shader: 'stft_frames',
    params: { count: R * frames * n, n, frames, hop, Lp: L + n },
    bindings: [xp.binding(), hannWindow(rt, n).binding(), fr.binding()],
    workgroups: launch1d(rt, R * frames * n),
  });
  xp.dispose();
  const s = fft(fr);
  fr.dispose();
  const bins = n / 2 + 1;
  const z = Tensor.empty([R, 2, bins, frames], 'f32', rt);
  rt.dispatch({
    shader: 'stft_bins',
    params: { count: z.size, n, bins, frames, scale: 1 / Math.sqrt(n) },
    bindings: [s.binding(), z.binding()],
    workgroups: launch1d(rt, z.size),
  });
  s.dispose();
  return z;
}

/**
 * torch.istft(z, n = 2·(bins − 1), hop, window=hann_window(n), center=True, normalized=True, length) for
 * z [R, 2, bins, frames] (real and imaginary planes, as `stft` returns) → [R, length].
 */
export function istft(z: Tensor, hop: number, length: number): Tensor {
  checkF32('istft', z);
  if (z.rank !== 4 || z.shape[1] !== 2) throw new Error(`istft: z must be [R, 2, bins, frames], got ${shapeStr(z)}`);
  const [R, , bins, frames] = z.shape;
  const n = 2 * (bins - 1);
  checkPow2('istft', n);
  if (!Number.isInteger(hop) || hop < 1 || hop > n) throw new Error(`istft: hop ${hop} for n_fft ${n}`);
  if (!Number.isInteger(length) || length < 0) throw new Error(`istft: length ${length}`);
  const rt = z.rt;
  const fr = Tensor.empty([R, frames, n, 2], 'f32', rt);
  rt.dispatch({
    shader: 'istft_frames',
    // normalized: ×√n; the inverse FFT's 1/n
    params: { count: R * frames * n, n, bins, frames, scale: 1 / Math.sqrt(n) },
    bindings: [z.binding(), fr.binding()],
    workgroups: launch1d(rt, R * frames * n),
  });
  const s = fft(fr, true);
  fr.dispose();
  const y = Tensor.empty([R, length], 'f32', rt);
  if (y.size > 0) {
    rt.dispatch({
      shader: 'istft_ola',
      params: { count: y.size, n, frames, hop, L: length, offset: n / 2 },
      bindings: [s.binding(), hannWindow(rt, n).binding(), y.binding()],
      workgroups: launch1d(rt, y.size),
    });
  }
  s.dispose();
  return y;
}

