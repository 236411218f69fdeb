"""`robustperf data info|make-synthetic`: inspect a data set, write a synthetic-format copy for demos."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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
    fid: float | None = typer.Option(None, help="FID tag to store in meta.json"),
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


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
