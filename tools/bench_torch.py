"""The PyTorch baseline for `npm run bench`: transformers' MusicGen on the CPU, stage by stage, the same work.

    .venv-ref/bin/python tools/bench_torch.py --model /tmp/musicgen-small-random --seconds 2 [--json]
        [--threads 2] [--repeat 1] [--warmup 1] [--seed 0] [--device cpu|cuda] [--dtype float32|float16|bfloat16]
        [--int8-dynamic]

--int8-dynamic (CPU, float32) applies torch.ao.quantization.quantize_dynamic to every nn.Linear of the LM decoder
and T5 (int8 weights with a per-row scale, activations quantised per call): the fair PyTorch peer of `--dtype q8`.

--device cuda (tools/gpu-bench.sh) runs eager PyTorch on the GPU; every timed stage then ends with
torch.cuda.synchronize(), so queued kernels land in their stage.

Per run: the 16-token prompt (bench_prompt.json in the folder, else BENCH_PROMPT) through T5 (text_s), then
model.generate(do_sample=True, top_k=250, guidance_scale=3, max_new_tokens=seconds*50+3), whose own T5 call and
EnCodec decode are timed inside it (wrappers around text_encoder.forward and audio_encoder.decode): generate_total_s
is generate's wall time minus both, encodec_decode_s the decode. per_step_ms = generate_total_s / steps. With
--json the last line is one JSON object (medians over --repeat runs, plus every run under "runs").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

BENCH_PROMPT = "80s pop track with bassy drums and synth and warm piano and soft strings"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/tmp/musicgen-small-random")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1, help="short untimed runs first (4 steps each)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU baseline")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--int8-dynamic", action="store_true", help="quantize_dynamic int8 on the LM's and T5's Linear layers (CPU)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import transformers
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    transformers.logging.set_verbosity_error()
    model_dir = Path(args.model)
    prompt_file = model_dir / "bench_prompt.json"
    prompt = json.loads(prompt_file.read_text())["prompt"] if prompt_file.exists() else BENCH_PROMPT

    t0 = time.perf_counter()
    dtype = getattr(torch, args.dtype)
    try:
        model = MusicgenForConditionalGeneration.from_pretrained(model_dir, dtype=dtype)
    except TypeError:  # transformers < 4.56 names it torch_dtype
        model = MusicgenForConditionalGeneration.from_pretrained(model_dir, torch_dtype=dtype)
    model = model.to(args.device).eval()
    if args.int8_dynamic:
        if args.device != "cpu" or args.dtype != "float32":
            raise SystemExit("--int8-dynamic runs on the CPU from float32")
        from torch.ao.quantization import quantize_dynamic, per_channel_dynamic_qconfig

        # per output row scales, like our q8; EnCodec (convs, LSTM) stays float32 as ours does
        spec = {torch.nn.Linear: per_channel_dynamic_qconfig}
        model.decoder = quantize_dynamic(model.decoder, spec, dtype=torch.qint8)
        model.text_encoder = quantize_dynamic(model.text_encoder, spec, dtype=torch.qint8)
        if getattr(model, "enc_to_dec_proj", None) is not None:
            model.enc_to_dec_proj = quantize_dynamic(torch.nn.Sequential(model.enc_to_dec_proj), spec, dtype=torch.qint8)[0]
    tok = AutoTokenizer.from_pretrained(model_dir)
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    load_s = time.perf_counter() - t0
    enc = tok([prompt], return_tensors="pt", padding=True).to(args.device)
    n_tokens = int(enc["input_ids"].shape[1])
    if n_tokens != 16:
        print(f"warning: the prompt is {n_tokens} tokens, not 16")

    # time spent inside generate() in the text encoder and in EnCodec's decode
    spent = {"text": 0.0, "decode": 0.0}

    def timed(fn, key):
        def wrapper(*a, **kw):
            sync()
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                sync()
                spent[key] += time.perf_counter() - t
        return wrapper

    model.text_encoder.forward = timed(model.text_encoder.forward, "text")
    model.audio_encoder.decode = timed(model.audio_encoder.decode, "decode")

    frames = int(round(args.seconds * 50))
    steps = frames + model.decoder.config.num_codebooks - 1

    def one_run(new_tokens: int, seed: int) -> dict:
        torch.manual_seed(seed)
        spent["text"] = spent["decode"] = 0.0
        with torch.inference_mode():
            sync()
            t = time.perf_counter()
            model.text_encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            sync()
            text_s = time.perf_counter() - t
            spent["text"] = 0.0
            t = time.perf_counter()
            audio = model.generate(**enc, do_sample=True, top_k=250, guidance_scale=3.0, max_new_tokens=new_tokens)
            sync()
            wall = time.perf_counter() - t
        gen = wall - spent["text"] - spent["decode"]
        return {
            "text_s": text_s,
            "generate_total_s": gen,
            "encodec_decode_s": spent["decode"],
            "generate_call_s": wall,
            "text_in_generate_s": spent["text"],
            "per_step_ms": 1000 * gen / new_tokens,
            "audio_samples": int(audio.shape[-1]),
        }

    for i in range(args.warmup):
        one_run(4, args.seed + 1000 + i)
    runs = []
    for r in range(args.repeat):
        res = one_run(steps, args.seed + r)
        runs.append(res)
        if not args.json or args.repeat > 1:
            print(f"run {r + 1}/{args.repeat}: text {res['text_s']:.3f} s, generate {res['generate_total_s']:.2f} s "
                  f"({res['per_step_ms']:.1f} ms/step), decode {res['encodec_decode_s']:.2f} s")

    med = {k: statistics.median(r[k] for r in runs) for k in ["text_s", "generate_total_s", "encodec_decode_s", "per_step_ms"]}
    out = {
        "impl": "pytorch",
        "device": (f"cuda ({torch.cuda.get_device_name()})" if cuda else f"cpu ({platform.processor() or platform.machine()})")
                  + f", torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
                  f"{os.cpu_count()} cpus",
        "dtype": args.dtype,
        "int8_dynamic": args.int8_dynamic,
        "seconds": args.seconds,
        "prompt_tokens": n_tokens,
        "steps": steps,
        "load_s": load_s,
        # ru_maxrss is KiB on Linux
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **({"cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20} if cuda else {}),
        **med,
        "runs": runs,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"load {load_s:.1f} s; median of {len(runs)}: text {med['text_s']:.3f} s, generate {med['generate_total_s']:.2f} s "
              f"({med['per_step_ms']:.1f} ms/step over {steps} steps), EnCodec decode {med['encodec_decode_s']:.2f} s")


if __name__ == "__main__":
    main()
