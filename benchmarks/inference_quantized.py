"""Inference cost per precision and batch size, and the robustness of the int8 model (papers/004 "Inference").

For a trained run: time, GFLOPs, activation memory and energy per image at fp32/bf16/fp16 (on the
chosen device) and int8 with convolutions quantised (FX static PTQ, CPU), then clean and robust
accuracy of the float and int8 models with the gradient-masking flags (`quantized_robustness`).
Writes ``benchmarks/results/inference_quantized_<tag>.md`` and ``.json``.

    # CPU: train the quickstart (about 20-60 s on the 2-core VM), then measure it
    OMP_NUM_THREADS=1 python -m robustperf train configs/quickstart.yaml --runs-dir /tmp/rp_runs
    OMP_NUM_THREADS=1 python benchmarks/inference_quantized.py --run /tmp/rp_runs/quickstart-* --tag cpu
    # GPU (owed where one is lent): float precisions on CUDA, int8 on the host CPU
    python benchmarks/inference_quantized.py --run RUN --device cuda --batch-sizes 1,128,1024 --tag gpu
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from dataclasses import replace
from pathlib import Path

import torch

from robustperf.cost.inference import InferenceBenchmark, InferenceConfig, quantize_int8
from robustperf.evaluation.quantized import load_run_for_inference, quantized_robustness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a finished run directory")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="1,64,256")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--n-examples", type=int, default=360)
    parser.add_argument("--square-queries", type=int, default=1000)
    parser.add_argument("--meter", default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tag", default="cpu")
    args = parser.parse_args()

    model, cfg, calibration, (x, y) = load_run_for_inference(args.run, args.n_examples)
    shape = tuple(x.shape[1:])
    batches = tuple(int(b) for b in args.batch_sizes.split(","))
    float_cfg = InferenceConfig(input_shape=shape, batch_sizes=batches, precisions=("fp32", "bf16", "fp16"),
                                device=args.device, iters=args.iters, meter=args.meter)
    points = list(InferenceBenchmark(float_cfg).measure(model.to(args.device)).points)
    int8_cfg = replace(float_cfg, precisions=("int8",), device="cpu")
    result = InferenceBenchmark(int8_cfg).measure(model.cpu(), calibration=calibration)
    points += list(result.points)
    quantized = quantize_int8(model, calibration)
    rob = quantized_robustness(model, quantized, x, y, eps=cfg.method.attack.eps, norm=cfg.method.attack.norm,
                               square_queries=args.square_queries)

    load = os.getloadavg()[0]
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "none"
    lines = [f"# Inference cost and int8 robustness: {cfg.model.name} {dict(cfg.model.kwargs)} from run "
             f"`{args.run.name}`", "",
             f"Machine: {platform.node()}, {len(os.sched_getaffinity(0))} CPU cores usable, GPU {gpu}, torch "
             f"{torch.__version__}, {torch.get_num_threads()} torch threads; 1-min load average at the end {load:.1f}. "
             f"Measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}.",
             f"Command: `python {' '.join(sys.argv)}`.", "",
             f"{result.n_params:,} parameters, {result.gflops:.4g} GFLOPs per image (counted).",
             f"Energy: {points[0].energy_source}. mJ / image integrates the meter over every timed batch (the mean "
             "batch time), latency is the median batch: on a loaded machine the mean exceeds the median.", "",
             "| precision | device | batch | latency ms (median) | images/s | mJ / image | peak activations KiB |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for p in points:
        dev = "cpu" if p.precision == "int8" else args.device
        if not p.supported:
            lines.append(f"| {p.precision} | {dev} | {p.batch_size} | unsupported: {p.note[:80]} | - | - | - |")
            continue
        mj = "-" if p.joules_per_image is None else f"{p.joules_per_image * 1e3:.4g}"
        kib = "-" if p.peak_activation_bytes is None else f"{p.peak_activation_bytes / 1024:.1f}"
        lines.append(f"| {p.precision} | {dev} | {p.batch_size} | {p.latency_ms:.3f} | {p.throughput:.0f} | {mj} | {kib} |")
    notes = {p.precision: p.note for p in points if p.note and p.supported}
    lines += [""] + [f"{k}: {v}." for k, v in notes.items()]
    lines += ["", f"## Accuracy on {rob.n_examples} test images ({rob.norm} eps {rob.eps:.4g})", "",
              "| model | clean acc | robust acc | how |", "| --- | --- | --- | --- |",
              f"| fp32 | {rob.clean_acc_float:.3f} | {rob.robust_acc_float:.3f} | AutoAttack {rob.version} |",
              f"| int8 | {rob.clean_acc_int8:.3f} | {rob.robust_acc_int8:.3f} | min(Square on int8 "
              f"{rob.square_acc_int8:.3f}, transfer of fp32 AutoAttack examples {rob.transfer_acc_int8:.3f}) |", ""]
    for name, flag in rob.flags.items():
        lines.append(f"- flag `{name}`: {'FIRED' if flag['fired'] else 'not fired'} - {flag['detail']}")
    lines.append(f"\nRobustness evaluation took {rob.seconds:.0f} s.")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"inference_quantized_{args.tag}.md").write_text(text)
    payload = {"points": [p.__dict__ for p in points], "robustness": rob.to_dict()}
    (args.out / f"inference_quantized_{args.tag}.json").write_text(json.dumps(payload, indent=1))
    print(text)


if __name__ == "__main__":
    main()
