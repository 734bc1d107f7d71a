// The T5 tokenizer, from the model folder's tokenizer.json, through @huggingface/tokenizers (a maintained pure-JS
// port of the Rust `tokenizers` library). Batches are padded to the longest prompt, as MusicGen's processor does.

import { Tokenizer } from '@huggingface/tokenizers';

export interface TokenBatch {
  /** [B, L] row-major. */
  inputIds: Int32Array;
  attentionMask: Int32Array;
  batch: number;
  length: number;
}

export class TextTokenizer {
  private constructor(private readonly tok: Tokenizer, readonly padId: number) {}

  /** `tokenizerJson` and `config` are the parsed tokenizer.json and tokenizer_config.json. */
  static fromJson(tokenizerJson: object, config: object = {}): TextTokenizer {
    const tok = new Tokenizer(tokenizerJson as never, config as never);
    const padToken = (config as { pad_token?: string | { content: string } }).pad_token;
    const padText = typeof padToken === 'string' ? padToken : padToken?.content ?? '<pad>';
    const padIds = tok.encode(padText, { add_special_tokens: false }).ids;
    return new TextTokenizer(tok, padIds.length === 1 ? padIds[0] : 0);
  }

  encode(text: string): number[] {
    return this.tok.encode(text).ids;
  }

  /** Tokenises and pads a batch (pad id, mask 0) to its longest member. */
  encodeBatch(texts: string[]): TokenBatch {
    const rows = texts.map((t) => this.encode(t));
    const length = Math.max(1, ...rows.map((r) => r.length));
    const inputIds = new Int32Array(rows.length * length).fill(this.padId);
    const attentionMask = new Int32Array(rows.length * length);
    rows.forEach((r, b) => {
      inputIds.set(r, b * length);
      attentionMask.fill(1, b * length, b * length + r.length);
    });
    return { inputIds, attentionMask, batch: rows.length, length };
  }
}
