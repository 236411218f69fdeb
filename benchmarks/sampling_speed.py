"""Sampling speed (images/s): robustperf's class-conditional sampler vs diffusers' own DDIMPipeline loop.

Both draw the same number of images from the same UNet2DModel with the same DDIM scheduler and step
count, in one process, alternating, so machine load hits both alike. diffusers' DDIMPipeline has no class
argument; a forward pre-hook hands the UNet the class labels, so the pipeline runs its own loop unchanged
(noise, `unet(x, t)`, `scheduler.step`, conversion to numpy). The UNet comes from a `data generate` run's
checkpoint when one is given, else it is freshly initialised (speed does not depend on the weights).

    OMP_NUM_THREADS=1 python benchmarks/sampling_speed.py [--checkpoint runs/generated/digits/checkpoints/step_0001500.pt]
        [--n-images 1000] [--steps 10 50] [--repeats 3] [--out benchmarks/results/sampling_speed_cpu.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from robustperf.data.generate import TrainSpec, UNetSpec, balanced_labels, build_unet, make_scheduler, sample


def diffusers_pipeline(unet: torch.nn.Module, labels: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    """Images from diffusers' DDIMPipeline with the class labels injected into every UNet call."""
    from diffusers import DDIMPipeline

    def add_labels(_module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return args, {**kwargs, "class_labels": labels}

    handle = unet.register_forward_pre_hook(add_labels, with_kwargs=True)
    try:
        pipe = DDIMPipeline(unet=unet, scheduler=make_scheduler("ddim", TrainSpec()))
        pipe.set_progress_bar_config(disable=True)
        out = pipe(batch_size=len(labels), num_inference_steps=steps, output_type="np",
                   generator=torch.Generator().manual_seed(seed)).images
    finally:
        handle.remove()
    return torch.from_numpy(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--n-images", type=int, default=1000)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unet = build_unet(UNetSpec(), channels=1, size=8, num_classes=10)
    if args.checkpoint:
        unet.load_state_dict(torch.load(args.checkpoint, map_location="cpu", weights_only=True)["unet"])
    unet.eval()
    labels = balanced_labels(args.n_images, 10)
    lines = [f"# Sampling speed: robustperf sampler vs diffusers DDIMPipeline ({args.n_images} images, 1x8x8, "
             f"UNet2DModel {sum(p.numel() for p in unet.parameters()):,} parameters)", "",
             f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch threads {args.threads}, "
             f"load average at start {os.getloadavg()[0]:.2f}; weights: {args.checkpoint or 'random init'}", "",
             "| DDIM steps | robustperf images/s | diffusers pipeline images/s | ratio | best of | max abs pixel diff |",
             "|---|---|---|---|---|---|"]
    for steps in args.steps:
        ours, theirs, diff = [], [], 0.0
        for r in range(args.repeats):
            t0 = time.perf_counter()
            a = sample(unet, make_scheduler("ddim", TrainSpec()), labels, steps=steps, seed=r, batch_size=args.n_images)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            b = diffusers_pipeline(unet, labels, steps, seed=r)
            theirs.append(time.perf_counter() - t0)
            # same seed, same first noise draw, deterministic DDIM (eta 0): the images must agree
            diff = max(diff, float((a.permute(0, 2, 3, 1) - b).abs().max()))
        rate_ours, rate_theirs = args.n_images / min(ours), args.n_images / min(theirs)
        lines.append(f"| {steps} | {rate_ours:.0f} | {rate_theirs:.0f} | {rate_ours / rate_theirs:.2f}x | "
                     f"{args.repeats} | {diff:.1e} |")
        print(lines[-1], flush=True)
    lines += ["", f"load average at end: {os.getloadavg()[0]:.2f}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
