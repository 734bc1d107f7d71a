"""A random-weight stand-in for facebook/musicgen-small, for benchmarks only (no real weights can be downloaded here).

    .venv-ref/bin/python tools/make_bench_model.py [--out /tmp/musicgen-small-random] [--seed 0]
        [--size small|medium|large] [--device cpu|cuda]

--size medium / large give facebook/musicgen-medium's / -large's decoder (1536 wide, 48 layers, 24 heads, FFN 6144 /
2048 wide, 48 layers, 32 heads, FFN 8192: 6 / 13 GB of float32); the text encoder (t5-base) and EnCodec are the same
for every size. --device cuda draws the random weights on the GPU (tools/gpu-bench.sh: large in seconds, not minutes).

The architecture is musicgen-small's exactly, from the published configs:
  text_encoder  t5-base: d_model 768, d_kv 64, d_ff 3072, 12 layers, 12 heads, vocab 32128, relu FFN
  audio_encoder facebook/encodec_32khz: num_filters 64, hidden 128, ratios [8, 5, 4, 4], codebook 2048 x 128,
                target bandwidth 2.2 kbps (= 4 quantizers), 2 LSTM layers, weight norm, reflect padding
  decoder       hidden 1024, 24 layers, 16 heads, FFN 4096, 4 codebooks of 2048 (pad = bos = 2048), gelu
saved with save_pretrained (about 2.3 GB of float32: never commit it). The tokenizer is the tiny demo model's
(weights/tiny-musicgen/tokenizer.json, 282 pieces, all < T5's 32128 ids), so the benchmark's prompt
(BENCH_PROMPT, 16 tokens with </s>) tokenises the same way in Python and TypeScript.

Weights are random, so the generated music is noise; the cost of every stage does not depend on the values. Two
repairs keep the numbers ordinary floats (as in tools/fixtures/models.py): every EnCodec conv's weight-norm
magnitude is 1 (transformers' init shrinks the signal ~3x per conv) and the RVQ codebooks are N(0, 1) (transformers
initialises them to zeros, which would make every code 0).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

import transformers
from transformers import (
    EncodecConfig,
    GenerationConfig,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    T5Config,
)

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "weights/tiny-musicgen"
BENCH_PROMPT = "80s pop track with bassy drums and synth and warm piano and soft strings"  # 16 tokens with </s>

transformers.logging.set_verbosity_error()


def t5_base() -> T5Config:
    return T5Config(
        vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12, num_heads=12,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
        layer_norm_epsilon=1e-6, initializer_factor=1.0, feed_forward_proj="relu", is_encoder_decoder=True,
        use_cache=True, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, n_positions=512,
    )


def encodec_32khz() -> EncodecConfig:
    return EncodecConfig(
        sampling_rate=32000, audio_channels=1, normalize=False, chunk_length_s=None, overlap=None,
        hidden_size=128, num_filters=64, num_residual_layers=1, upsampling_ratios=[8, 5, 4, 4],
        norm_type="weight_norm", kernel_size=7, last_kernel_size=7, residual_kernel_size=3, dilation_growth_rate=2,
        use_causal_conv=False, pad_mode="reflect", compress=2, num_lstm_layers=2, trim_right_ratio=1.0,
        codebook_size=2048, codebook_dim=128, use_conv_shortcut=False, target_bandwidths=[2.2],
    )


# (hidden, layers, heads, ffn) of the published decoders
DECODER_SIZES = {"small": (1024, 24, 16, 4096), "medium": (1536, 48, 24, 6144), "large": (2048, 48, 32, 8192)}


def musicgen_decoder(size: str = "small") -> MusicgenDecoderConfig:
    hidden, layers, heads, ffn = DECODER_SIZES[size]
    return MusicgenDecoderConfig(
        vocab_size=2048, max_position_embeddings=2048, num_hidden_layers=layers, ffn_dim=ffn, num_attention_heads=heads,
        layerdrop=0.0, use_cache=True, activation_function="gelu", hidden_size=hidden, dropout=0.1,
        attention_dropout=0.0, activation_dropout=0.0, initializer_factor=0.02, scale_embedding=False,
        num_codebooks=4, audio_channels=1, pad_token_id=2048, bos_token_id=2048, tie_word_embeddings=False,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/musicgen-small-random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", default="small", choices=sorted(DECODER_SIZES))
    ap.add_argument("--device", default="cpu", help="where the random weights are drawn (cuda is much faster for large)")
    args = ap.parse_args()
    out = Path(args.out)
    free = shutil.disk_usage(out.parent if out.parent.exists() else Path("/")).free
    need = {"small": 6e9, "medium": 14e9, "large": 28e9}[args.size]
    if free < need:
        raise SystemExit(f"{out.parent}: only {free / 1e9:.1f} GB free; the {args.size} model needs {need / 2e9:.0f} GB (plus room to save)")

    t0 = time.time()
    torch.manual_seed(args.seed)
    cfg = MusicgenConfig(
        text_encoder=t5_base().to_dict(), audio_encoder=encodec_32khz().to_dict(), decoder=musicgen_decoder(args.size).to_dict(),
    )
    with torch.device(args.device):
        model = MusicgenForConditionalGeneration(cfg).eval()
    g = torch.Generator(device=args.device).manual_seed(args.seed + 1)
    with torch.no_grad():
        for mod in model.audio_encoder.modules():
            if hasattr(mod, "parametrizations"):
                mod.parametrizations.weight.original0.fill_(1.0)
                if getattr(mod, "bias", None) is not None:
                    mod.bias.copy_(0.01 * torch.randn(mod.bias.shape, generator=g, device=args.device))
        for layer in model.audio_encoder.quantizer.layers:
            cb = layer.codebook
            cb.embed.copy_(torch.randn(cb.embed.shape, generator=g, device=args.device))
            cb.embed_avg.copy_(cb.embed)
            cb.cluster_size.fill_(1.0)
            cb.inited.fill_(True)
    model.generation_config = GenerationConfig(
        bos_token_id=2048, decoder_start_token_id=2048, pad_token_id=2048, do_sample=True, guidance_scale=3.0,
        max_length=1500,
    )
    n_params = {name: sum(p.numel() for p in m.parameters()) for name, m in
                [("text_encoder", model.text_encoder), ("audio_encoder", model.audio_encoder), ("decoder", model.decoder)]}
    print(f"built in {time.time() - t0:.1f} s; parameters: " + ", ".join(f"{k} {v / 1e6:.1f} M" for k, v in n_params.items()))

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, max_shard_size="10GB")  # one model.safetensors
    for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "preprocessor_config.json"]:
        shutil.copy(TINY / name, out / name)
    (out / "bench_prompt.json").write_text(json.dumps({"prompt": BENCH_PROMPT}) + "\n")
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {out} ({size / 1e9:.2f} GB) in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
