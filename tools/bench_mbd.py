"""Multi-band diffusion speed, PyTorch side (BENCHMARKS.md "Multi-band diffusion"); writes the package ours reads.

    .venv-ref/bin/python tools/bench_mbd.py --audiocraft DIR --julius DIR --out /tmp/mbd-full.th [--seconds 8]
        [--threads 2] [--passes 1] [--json]
    node --import tsx tools/bench-mbd.ts --mbd /tmp/mbd-full.th --seconds 8 [--passes 1]

The package holds one band model of the full-size U-Net (audiocraft's config/model/score/basic.yaml: hidden 48,
depth 4, growth 4, kernel 8, stride 4, emb_all_layers; with codec_dim 128 and the bottleneck transformer, the
setting in which DiffusionUnet uses the EnCodec latent at all) with random weights, and MultiBandProcessor
statistics; all four published band models share that shape, so one stands for each. A decode of S seconds is
4 models × 20 steps of U-Net passes over the whole clip, plus each model's band processor (8 bands) and re_eq
(SplitBands(32) of the diffusion output and of the EnCodec decode). Timed here, each on one clip of S seconds:
one U-Net pass (median of --passes), one MultiBandProcessor.return_sample, one re_eq; the decode estimate is
80 · pass + 4 · processor + re_eq (EnCodec's own decode, in the end-to-end benchmarks, left out).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures'))
from mbd import DictConfig, SCHEDULE, import_audiocraft, plain  # noqa: E402

FULL_UNET = dict(hidden=48, depth=4, res_blocks=1, norm_groups=4, kernel=8, stride=4, growth=4, max_channels=10_000,
                 dropout=0., emb_all_layers=True, bilstm=False, codec_dim=128, transformer=True, cross_attention=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--audiocraft', required=True)
    ap.add_argument('--julius', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--seconds', type=float, default=8)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--passes', type=int, default=1)
    ap.add_argument('--json', action='store_true')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    DiffusionUnet, MultiBandDiffusion, _, _, MultiBandProcessor, _, julius = import_audiocraft(args.audiocraft, args.julius)
    torch.manual_seed(0)
    cfg = DictConfig(dict(sample_rate=32000, channels=1, schedule=dict(SCHEDULE), diffusion_unet=FULL_UNET,
                          processor=dict(name='multi_band_processor', use=True, n_bands=8, num_samples=10_000, power_std=0.75)))
    c = plain(cfg)
    model = DiffusionUnet(chin=1, num_steps=1000, **c['diffusion_unet']).eval()
    proc = MultiBandProcessor(sample_rate=32000, n_bands=8, num_samples=10_000, power_std=0.75)
    proc.counts.fill_(10000.)
    proc.sum_x.copy_(torch.randn(8) * 100)
    proc.sum_x2.copy_(torch.rand(8) * 1000 + 100)
    proc.sum_target_x2.copy_(torch.rand(8) * 5000 + 5000)
    if not os.path.exists(args.out):
        torch.save({'sample_rate': 32000, 'n_bands': 1, 0: {'cfg': cfg, 'model_state': model.state_dict(), 'processor_state': proc.state_dict()}}, args.out)
    params = sum(p.numel() for p in model.parameters())

    N = int(args.seconds * 32000) // 640 * 640
    x = torch.randn(1, 1, N)
    cond = torch.randn(1, 128, N // 640)
    passes = []
    with torch.no_grad():
        for _ in range(args.passes):
            t0 = time.perf_counter()
            model(x, 500, condition=cond)
            passes.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        proc.return_sample(x)
        proc_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        split = julius.SplitBands(n_bands=32, sample_rate=32000)
        a, b = split(x), split(torch.randn(1, 1, N))
        out = torch.zeros_like(x)
        for i in range(32):
            out += a[i] * (b[i].std() / a[i].std())
        req_s = time.perf_counter() - t0
    pass_s = statistics.median(passes)
    res = {'side': 'pytorch', 'seconds': args.seconds, 'threads': args.threads, 'unet_params': params, 'unet_pass_s': pass_s,
           'processor_s': proc_s, 're_eq_s': req_s, 'decode_estimate_s': 80 * pass_s + 4 * proc_s + req_s, 'passes': passes}
    print(f"PyTorch ({args.threads} threads): U-Net of {params / 1e6:.0f}M parameters, one pass over {args.seconds:g} s: {pass_s:.2f} s; "
          f"processor {proc_s:.2f} s; re_eq {req_s:.2f} s; MBD decode estimate {res['decode_estimate_s']:.0f} s")
    if args.json:
        print(json.dumps(res))


if __name__ == '__main__':
    main()
