// MusicGen's delay pattern (transformers' build_delay_pattern_mask): codebook k is delayed by k steps (stereo:
// the L/R pair of each level shares a delay: 0,0,1,1,...). The decoder sequence starts with an all-pad column;
// cells before a codebook's delay and after its last frame are forced to the pad id; prompt codes
// (continuation) are forced too. Everything else is generated. Pure CPU, computed once per generation.

/** Delay of codebook k: k per level, the L/R pair of a stereo level sharing it. */
export function codebookDelay(k: number, channels: number): number {
  return Math.floor(k / channels);
}

export interface DelayPattern {
  K: number;
  /** Steps of the decoder sequence, the initial pad column included. */
  length: number;
  /** [K, length]: the forced value, or -1 where the model's token is kept. */
  forced: Int32Array;
  /** First column to generate (1 + prompt frames). */
  start: number;
  /** Audio frames the sequence yields per codebook. */
  frames: number;
  delays: number[];
}

/**
 * `prompt` [K, Tp] codes (continuation) or null; `newTokens` steps to generate after the prompt.
 * `channels` 2 for stereo models (interleaved codebooks).
 */
export function buildDelayPattern(K: number, channels: number, padId: number, newTokens: number, prompt: Int32Array | null = null, Tp = 0): DelayPattern {
  const perChannel = K / channels;
  const length = 1 + Tp + newTokens;
  if (length < 2 * perChannel - 1) throw new Error(`too few steps (${newTokens}) for ${perChannel} delayed codebooks`);
  const delays = Array.from({ length: K }, (_, k) => codebookDelay(k, channels));
  const forced = new Int32Array(K * length).fill(-1);
  for (let k = 0; k < K; k++) {
    const d = delays[k];
    const row = forced.subarray(k * length, (k + 1) * length);
    // prompt column j (j = 0 is the pad column) sits at step j + d
    for (let j = 1; j <= Tp; j++) if (prompt) row[j + d] = prompt[k * Tp + j - 1];
    for (let t = 0; t < length; t++) {
      if (t <= d || t >= length - perChannel + 1 + d) row[t] = padId;
    }
  }
  return { K, length, forced, start: 1 + Tp, frames: length - perChannel, delays };
}

/** Undoes the delay: sequence [K, length] → codes [K, frames] (frame f of codebook k is step f + d_k + 1). */
export function undoDelay(p: DelayPattern, sequence: Int32Array): Int32Array {
  const out = new Int32Array(p.K * p.frames);
  for (let k = 0; k < p.K; k++) {
    for (let f = 0; f < p.frames; f++) out[k * p.frames + f] = sequence[k * p.length + f + p.delays[k] + 1];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// teacher forcing (training): the decoder input is built as transformers builds it for labels: labels [B, T, K]
// hold the codes in the delay pattern (codebook k shifted right by its delay) with the pad id outside it, and
// decoder_input_ids are the labels shifted right by one with the pad/BOS id in front (shift_tokens_right).


/**
 * labels [B, T, K] for a batch of code sequences ([K, frames_b] each): codebook k's frame f at time f + delay(k),
 * the pad id everywhere else; T = the longest frames + the largest delay.
 */
export function delayedLabels(codes: { codes: Int32Array; frames: number }[], K: number, channels: number, pad: number): { labels: Int32Array; T: number } {
  const maxDelay = codebookDelay(K - 1, channels);
  const T = Math.max(...codes.map((c) => c.frames)) + maxDelay;
  const B = codes.length;
  const labels = new Int32Array(B * T * K).fill(pad);
  codes.forEach(({ codes: c, frames }, b) => {
    if (c.length !== K * frames) throw new Error(`delayedLabels: ${c.length} codes for ${K} codebooks × ${frames} frames`);
    for (let k = 0; k < K; k++) {
      const d = codebookDelay(k, channels);
      for (let f = 0; f < frames; f++) labels[(b * T + f + d) * K + k] = c[k * frames + f];
    }
  });
  return { labels, T };
}

/** decoder_input_ids [B, K, T] from labels [B, T, K]: shifted right by one, `bos` in column 0. */
export function shiftRight(labels: Int32Array, B: number, T: number, K: number, bos: number): Int32Array {
  const out = new Int32Array(B * K * T);
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < K; k++) {
      const row = (b * K + k) * T;
      out[row] = bos;
      for (let t = 1; t < T; t++) out[row + t] = labels[(b * T + t - 1) * K + k];
    }
  }
  return out;
}

/** labels [B, T, K] → K rows of [B·T] (codebook k's targets, b-major), the cross-entropy's layout. */
export function labelsByCodebook(labels: Int32Array, B: number, T: number, K: number): Int32Array[] {
  return Array.from({ length: K }, (_, k) => {
    const out = new Int32Array(B * T);
    for (let i = 0; i < B * T; i++) out[i] = labels[i * K + k];
    return out;
  });
}
