"""`robustperf data info|make-synthetic|fid|import|generate`: inspect data sets, measure FID, make synthetic sets."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from robustperf.cli.common import console, fail, user_errors

if TYPE_CHECKING:
    from robustperf.config import DataConfig

data_app = typer.Typer(help="Data sets.", no_args_is_help=True)


def _data_config(target: str, overrides: list[str]) -> DataConfig:
    """A DataConfig from a run config file, or from a dataset name plus data.* overrides."""
    from robustperf.config import ConfigError, load_config

    if target.endswith((".yaml", ".yml", ".json")) or Path(target).is_file():
        return load_config(target, overrides).data
    bad = [o for o in overrides if not o.startswith("data.")]
    if bad:
        raise ConfigError(f"with a dataset name only data.* overrides apply; got {bad}")
    return load_config(None, [f"data.dataset={target}", *overrides]).data


@data_app.command("info")
def info(
    target: str = typer.Argument("digits", help="a config file, or a dataset name (digits, cifar10, ...)"),
    overrides: list[str] = typer.Option([], "--set", help="data.key=value override (repeatable)"),
    seed: int = typer.Option(0, help="seed for the n_train subset"),
) -> None:
    """Sizes, shape, classes, normalisation and synthetic mixing of a configured data set."""
    from robustperf.data import build_data, make_train_loader

    with user_errors():
        cfg = _data_config(target, overrides)
        bundle = build_data(cfg, seed=seed)
        loader = make_train_loader(bundle, cfg, seed=seed, device="cpu")
    table = Table("field", "value")
    rows = {
        "dataset": bundle.name,
        "train samples": len(bundle.train),
        "test samples": len(bundle.test),
        "on disk (train / test)": _on_disk(bundle.facts()),
        "input shape (C, H, W)": bundle.input_shape,
        "classes": bundle.num_classes,
        "mean": bundle.mean,
        "std": bundle.std,
        "synthetic samples": len(bundle.synthetic) if bundle.synthetic is not None else 0,
        "synthetic FID": bundle.synthetic_fid,
        "synthetic per batch": f"{loader.n_syn} of {cfg.batch_size}",
        "augmentation": cfg.augmentation,
        "batches per epoch": len(loader),
        "samples per epoch": loader.samples_per_epoch,
    }
    for key, value in rows.items():
        table.add_row(key, "" if value is None else str(value))
    console.print(table)


@data_app.command("make-synthetic")
def make_synthetic(
    target: str = typer.Argument(..., help="a config file or dataset name whose training set is copied"),
    out: Path = typer.Option(..., "--out", help="directory to write images.npy, labels.npy, meta.json"),
    fid: float | None = typer.Option(None, help="a typed FID tag for demos; `data fid OUT --ref REF --write-meta` "
                                                "measures one instead"),
    overrides: list[str] = typer.Option([], "--set", help="data.key=value override (repeatable)"),
) -> None:
    """Write a data set's training images in the synthetic-directory format (uint8 NHWC), for demos and tests.

    The copy is real data, not generated images: it only exercises the synthetic-data path end to end.
    """
    import json

    import numpy as np
    import torch

    from robustperf.data import build_data, eval_tensors

    with user_errors():
        cfg = _data_config(target, overrides)
        bundle = build_data(cfg, seed=0)
    if out.exists() and any(out.iterdir()):
        fail(f"{out} is not empty; choose a new --out directory")
    out.mkdir(parents=True, exist_ok=True)
    x, y = eval_tensors(bundle.train, None)
    images = torch.round(x * 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()  # (N, H, W, C)
    np.save(out / "images.npy", images)
    np.save(out / "labels.npy", y.numpy().astype(np.int64))
    meta = {"fid": fid, "source": f"copy of {bundle.name} train ({len(y)} images)", "num_classes": bundle.num_classes}
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    console.print(f"wrote {len(y)} images of shape {images.shape[1:]} to {out}")


@data_app.command("fid")
def fid(
    images: str = typer.Argument(..., help="a synthetic set (.npz or directory) or a dataset name"),
    ref: str = typer.Option(..., "--ref", help="reference: a dataset name (digits, cifar10), a set path, or a "
                                                "statistics .npz (mu, sigma)"),
    extractor: str = typer.Option("auto", help="auto (digits-cnn for digits, else inception-v3-pool3), "
                                               "inception-v3-pool3 or digits-cnn"),
    split: str = typer.Option("train", help="split of a named reference data set"),
    root: str | None = typer.Option(None, help="data.root of a CIFAR-style reference"),
    weights: str | None = typer.Option(None, help="Inception weights file (default: the standard places)"),
    cache_dir: str | None = typer.Option(None, help="cache for reference statistics and extractors "
                                                    "(default $ROBUSTPERF_CACHE or ~/.cache/robustperf)"),
    max_images: int | None = typer.Option(None, min=2, help="use a seeded subset of at most this many images"),
    device: str = typer.Option("cpu", help="device for the Inception network"),
    write_meta: bool = typer.Option(False, help="store the FID in the set's meta.json (directories only)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Frechet distance between the features of IMAGES and of the reference, naming the extractor used."""
    import json

    from robustperf.data.fid import measure_fid, write_fid_meta

    target = Path(images)
    if write_meta and not target.is_dir():
        fail(f"--write-meta needs a synthetic directory; {images} is not one (use `robustperf data import`)")
    with user_errors():
        result = measure_fid(images, ref, extractor=None if extractor == "auto" else extractor, split=split,
                             root=root, cache=cache_dir, max_images=max_images, device=device, weights=weights)
        if write_meta:
            write_fid_meta(target, result)
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    console.print(f"FID {result.fid:.4f}  ({result.extractor}; {result.n_images} images vs "
                  f"{result.n_reference} of {result.reference})")


@data_app.command("import")
def import_set(
    source: Path = typer.Argument(..., help="an external generated set: .npz with images (uint8) and labels"),
    out: Path = typer.Option(..., "--out", help="new synthetic directory (images.npy, labels.npy, meta.json)"),
    ref: str = typer.Option(..., "--ref", help="reference for the FID (see `data fid --ref`)"),
    extractor: str = typer.Option("auto", help="see `data fid`"),
    split: str = typer.Option("train"),
    root: str | None = typer.Option(None),
    weights: str | None = typer.Option(None),
    cache_dir: str | None = typer.Option(None),
    fid_images: int | None = typer.Option(50_000, min=2, help="measure the FID on at most this many images"),
    device: str = typer.Option("cpu"),
) -> None:
    """Copy an external set into the synthetic-directory format with its FID measured, not typed."""
    import numpy as np

    from robustperf.data.fid import measure_fid, write_fid_meta
    from robustperf.data.sources import load_synthetic

    if out.exists() and any(out.iterdir()):
        fail(f"{out} is not empty; choose a new --out directory")
    with user_errors():
        data, _ = load_synthetic(str(source))  # validates keys and shape before the expensive FID
        result = measure_fid(str(source), ref, extractor=None if extractor == "auto" else extractor, split=split,
                             root=root, cache=cache_dir, max_images=fid_images, device=device, weights=weights)
    out.mkdir(parents=True, exist_ok=True)
    with np.load(source) as npz:
        key = "images" if "images" in npz.files else "x"
        images = np.asarray(npz[key])
    if images.dtype != np.uint8:  # floats in [0, 1] -> the uint8 the synthetic format stores
        images = np.round(np.clip(images.astype(np.float32), 0.0, 1.0) * 255).astype(np.uint8)
    if images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)  # stored NHWC, like make-synthetic
    np.save(out / "images.npy", np.ascontiguousarray(images))
    np.save(out / "labels.npy", data.labels.numpy().astype(np.int64))
    write_fid_meta(out, result, {"source": f"imported from {source}", "num_classes": int(data.labels.max()) + 1})
    console.print(f"imported {len(data)} images to {out}; FID {result.fid:.4f} ({result.extractor})")


@data_app.command("generate")
def generate_cmd(
    config: Path = typer.Argument(..., help="a generate config, e.g. configs/generate_digits.yaml"),
    out_dir: str | None = typer.Option(None, help="override the config's out_dir"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Train a class-conditional diffusion model and write one synthetic set per quality level, FID measured."""
    import json

    from robustperf.data.generate import generate, load_generate_config

    with user_errors():
        cfg = load_generate_config(config)
        if out_dir is not None:
            cfg = cfg.model_copy(update={"out_dir": out_dir})
        result = generate(cfg)
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    table = Table("level", "checkpoint", "sampler", "images", "FID", "images/s", "path",
                  title=f"{result.name}: extractor {result.levels[0].extractor}")
    for lv in result.levels:
        rate = f"{lv.n_images / lv.sample_seconds:.0f}" if lv.sample_seconds else ""
        table.add_row(lv.name, str(lv.checkpoint), f"{lv.sampler} {lv.steps}", str(lv.n_images), f"{lv.fid:.2f}",
                      rate, lv.path)
    console.print(table)
    console.print(f"real test split vs the same reference: FID {result.real_fid:.2f}; training "
                  f"{result.train_seconds:.0f} s, total {result.total_seconds:.0f} s")


@data_app.command("quality-study")
def quality_study(
    study_file: Path = typer.Argument(..., help="a study whose runs mix measured synthetic sets (configs/quality_study.yaml)"),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="where run directories go (default: the study's)"),
    workers: int | None = typer.Option(None, "--workers", min=1, help="parallel runs"),
    bootstrap: int = typer.Option(200, min=0, help="bootstrap resamples for the intervals"),
    human_accuracy: float | None = typer.Option(None, help="draw a human-level robust accuracy line (0..1)"),
    human_study: Path | None = typer.Option(None, "--human-study", help="draw the human-level line of this labelling "
                                            "study (`robustperf human create`): model + average human, all data "
                                            "(papers/001 Table 4)"),
    metric: str = typer.Option("adv_loss", help="fit the laws on adv_loss (the papers' CE + 5 KL), adv_ce (CE at the PGD points) or robust_error"),
    results: Path | None = typer.Option(None, help="also copy the results markdown here"),
) -> None:
    """Run a data-quality study (finished runs are skipped), fit Approach 2 and 3 with the measured FIDs and write
    the ceilings at FID 0 and per level, with intervals, to RUNS/reports/<name>/quality.{md,json,png}."""
    import json
    import os
    import time

    from robustperf.report.quality import METRICS, accuracy_vs_flops, analyze_quality, ceiling_law, results_markdown
    from robustperf.store.index import load_index
    from robustperf.store.record import describe_machine
    from robustperf.store.schema import FINAL
    from robustperf.sweep import load_study, run_study

    if metric not in METRICS:  # before any run starts
        raise typer.BadParameter(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if human_accuracy is not None and not 0.0 <= human_accuracy <= 1.0:
        raise typer.BadParameter(f"--human-accuracy is an accuracy in [0, 1], got {human_accuracy}")
    if human_accuracy is not None and human_study is not None:
        raise typer.BadParameter("give --human-accuracy or --human-study, not both")
    human_label = None
    if human_study is not None:  # scored before any run starts: a study with no answers fails here
        from robustperf.human.report import human_level

        with user_errors():
            level = human_level(human_study)
        human_accuracy, human_label = level.value, level.label
    t0 = time.perf_counter()
    with user_errors():
        spec = load_study(study_file)
        result = run_study(spec, runs_dir, workers=workers)
    ex = result.execution
    ids = set(result.run_ids)
    rows = [r for r in load_index(result.runs_dir) if r.get("run_id") in ids]
    key = spec.evaluate.key if spec.evaluate.attacks else None
    t_fit = time.perf_counter()
    with user_errors():
        analysis = analyze_quality(rows, evaluation_key=key, bootstrap=bootstrap, seed=spec.fit.seed, metric=metric)
    fit_seconds = time.perf_counter() - t_fit
    out = result.runs_dir / "reports" / spec.name
    out.mkdir(parents=True, exist_ok=True)
    stem = "quality" if metric == "adv_loss" else f"quality_{metric}"
    fig = accuracy_vs_flops(analysis, human_accuracy=human_accuracy, human_label=human_label)
    fig.savefig(out / f"{stem}_accuracy_vs_flops.png", dpi=120)
    header = [f"study {spec.name}: {len(ids)} runs ({ex.count('finished') if ex else 0} finished now, "
              f"{ex.count('skipped') if ex else 0} already done, {ex.n_failed if ex else 0} failed); this command "
              f"{time.perf_counter() - t0:.0f} s wall (runs {result.wall_seconds:.0f} s, fits {fit_seconds:.1f} s)",
              f"machine: {describe_machine()}, load average now {os.getloadavg()[0]:.2f}",
              f"robust accuracy: {key or FINAL.robust_acc}; loss: "
              f"{'1 - robust accuracy' if metric == 'robust_error' else getattr(FINAL, metric)}"]
    text = results_markdown(analysis, title=f"Data-quality study {spec.name}", header_lines=header)
    (out / f"{stem}.md").write_text(text)
    payload = {"approach2": analysis.approach2.to_dict() if analysis.approach2 is not None else None,
               "approach2_joint": (analysis.approach2_joint.to_dict() if analysis.approach2_joint is not None
                                   else None),
               "approach3": analysis.approach3.to_dict() if analysis.approach3 is not None else None,
               "ceilings_drawn_from": ceiling_law(analysis),
               "ceilings": analysis.ceilings, "extractor": analysis.extractor, "notes": analysis.notes,
               "metric": analysis.metric,
               "runs": analysis.frame.to_dict(orient="records")}
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=2, default=str))
    if results is not None:
        results.write_text(text)
    console.print(text)
    console.print(f"written: {out / stem}.md, {stem}.json, {stem}_accuracy_vs_flops.png")
    if ex is not None and ex.n_failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


def _on_disk(facts: dict[str, Any]) -> str:
    """Images the data set holds before subsetting, and whether that is fewer than the official release."""
    text = f"{facts['available_train']} / {facts['available_test']}"
    if facts.get("partial"):
        text += f" (a partial copy: the official release has {facts['official_train']} / {facts['official_test']})"
    return text
