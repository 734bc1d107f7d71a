"""The PyTorch baseline for `npm run bench -- --demucs`: demucs's own apply_model (split=True, overlap=0.25,
shifts=0) on a full-size HTDemucs with random weights, the same synthetic stereo clip as src/bench/demucs.ts.

    DEMUCS_SRC=/tmp/src-demucs .venv-ref/bin/python tools/bench_demucs_torch.py --out /tmp/htdemucs-bench \
        --seconds 30 [--threads 2] [--repeat 1] [--json] [--no-time]

Builds HTDemucs(['drums', 'bass', 'other', 'vocals']) with demucs's default arguments and the published htdemucs's
segment (39/5 s), random weights (seed 0), and writes into --out:
  htdemucs-random.th        the package (demucs.states.serialize_model(..., half=True)), for `npm run bench/probe`
  demucs.inputs.safetensors  `demucs.mix` [2, N], the clip (for `npm run probe -- --demucs ...`)
  demucs.outputs.safetensors `demucs.stems` [4, 2, N] from the timed run (compare with tools/fixtures/compare_probe.py)
The model runs on the half-precision weights the package holds (as float32). The demucs source comes from
DEMUCS_SRC (see tools/fixtures/demucs_src.py). With --json the last line is one JSON object.
"""
import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
from fractions import Fraction

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures'))
import demucs_src  # noqa: E402

demucs_src.setup()
from demucs.apply import apply_model  # noqa: E402
from demucs.htdemucs import HTDemucs  # noqa: E402
from demucs.states import serialize_model  # noqa: E402


def bench_clip(seconds, sr):
    """Three tones, the right channel delayed by 37 samples and quieter (src/bench/demucs.ts benchClip)."""
    n = round(seconds * sr)
    t = torch.arange(n, dtype=torch.float64) / sr
    left = (0.3 * torch.sin(2 * math.pi * 220 * t) + 0.2 * torch.sin(2 * math.pi * 330 * t + 1)
            + 0.1 * torch.sin(2 * math.pi * 1250 * t + 2))
    return torch.stack([left, 0.8 * left.roll(37)]).float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='/tmp/htdemucs-bench')
    ap.add_argument('--seconds', type=float, default=30.0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--repeat', type=int, default=1)
    ap.add_argument('--json', action='store_true')
    ap.add_argument('--no-time', action='store_true', help='only write the package and the clip')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    os.makedirs(a.out, exist_ok=True)
    model = HTDemucs(['drums', 'bass', 'other', 'vocals'], segment=Fraction(39, 5))
    package = serialize_model(model, training_args={}, half=True)
    torch.save(package, os.path.join(a.out, 'htdemucs-random.th'))
    model.load_state_dict({k: v.float() for k, v in package['state'].items()})
    model.eval()
    mix = bench_clip(a.seconds, model.samplerate)
    save_file({'demucs.mix': mix.contiguous()}, os.path.join(a.out, 'demucs.inputs.safetensors'))
    params = sum(p.numel() for p in model.parameters())
    print(f'HTDemucs: {params / 1e6:.1f} M parameters, segment {int(model.segment * model.samplerate)} samples',
          file=sys.stderr)
    if a.no_time:
        return
    runs = []
    stems = None
    for r in range(a.repeat):
        t0 = time.perf_counter()
        stems = apply_model(model, mix[None], shifts=0, split=True, overlap=0.25)[0]
        runs.append(time.perf_counter() - t0)
        print(f'run {r + 1}/{a.repeat}: {a.seconds} s separated in {runs[-1]:.2f} s', file=sys.stderr)
    save_file({'demucs.stems': stems.contiguous()}, os.path.join(a.out, 'demucs.outputs.safetensors'))
    result = {
        'impl': 'pytorch', 'torch': torch.__version__, 'threads': a.threads, 'cpu': platform.processor(),
        'params_m': params / 1e6, 'seconds': a.seconds, 'separate_s': statistics.median(runs), 'runs': runs,
        'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(result) if a.json else f"median {result['separate_s']:.2f} s")


if __name__ == '__main__':
    main()
