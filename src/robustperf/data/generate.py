"""Synthetic training data of a quality you can turn: a class-conditional diffusion model and its samples.

`robustperf data generate CONFIG` trains a small class-conditional UNet (diffusers' `UNet2DModel`, with a
class embedding) with the DDPM noise-prediction loss on a data set's training split, checkpoints it along
the way, and samples one labelled set per *quality level*: a checkpoint and a sampler (diffusers' DDIM or
DDPM scheduler) with a number of steps. Earlier checkpoints and fewer steps give worse images, so the
levels span a range of FIDs. Every level is written in the synthetic-directory format the data loader
reads (``images.npy`` uint8 NHWC, ``labels.npy``, ``meta.json``) with its FID measured against the real
training set and the extractor named (`robustperf.data.fid`).

On the 8x8 digits the whole thing runs on one CPU thread in minutes; on CIFAR-10 the same config with
``device: cuda`` and a bigger UNet uses a GPU.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import Tensor

from robustperf.bounded_yaml import YAMLTooLargeError, check_size, load_bounded
from robustperf.data.datasets import DataError

log = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UNetSpec(_Section):
    """The denoiser: diffusers' UNet2DModel with plain ResNet down/up blocks and a class embedding."""

    block_out_channels: tuple[int, ...] = Field((32, 64), description="channels per resolution level")
    layers_per_block: int = Field(1, ge=1)
    norm_num_groups: int = Field(8, ge=1, description="GroupNorm groups (must divide every channel count)")

    @model_validator(mode="after")
    def _groups_divide(self) -> UNetSpec:
        bad = [c for c in self.block_out_channels if c % self.norm_num_groups]
        if bad:
            raise ValueError(f"norm_num_groups={self.norm_num_groups} must divide every block_out_channels "
                             f"entry; {bad} are not multiples")
        return self


class TrainSpec(_Section):
    """DDPM training (Ho et al. 2020): predict the noise added at a random timestep, MSE loss."""

    steps: int = Field(1500, ge=1, description="optimiser steps")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(2e-3, gt=0)
    checkpoint_every: int = Field(250, ge=1, description="save the UNet every this many steps (and at the end)")
    num_train_timesteps: int = Field(1000, ge=2)
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "squaredcos_cap_v2"


class LevelSpec(_Section):
    """One quality level: which checkpoint, which sampler, how many sampling steps."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9._-]+$")
    checkpoint: int = Field(..., ge=1, description="training step of the checkpoint to sample from")
    sampler: Literal["ddim", "ddpm"] = "ddim"
    steps: int = Field(25, ge=1, description="sampling steps")


class GenerateConfig(_Section):
    """A `robustperf data generate` config (see configs/generate_digits.yaml)."""

    name: str
    dataset: str = Field("digits", description="data set whose training split the generator learns")
    root: str | None = Field(None, description="data.root of a CIFAR-style data set")
    out_dir: str = Field(..., description="checkpoints/ and one synthetic directory per level go here")
    unet: UNetSpec = Field(default_factory=UNetSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    levels: tuple[LevelSpec, ...] = Field(..., min_length=1)
    n_per_level: int | None = Field(None, ge=10, description="images per level (default: the training set size)")
    sample_batch_size: int = Field(500, ge=1)
    extractor: str = Field("auto", description="FID extractor (auto: digits-cnn for digits, else Inception)")
    fid_cache: str | None = Field(None, description="FID cache directory (default ~/.cache/robustperf)")
    device: str = "cpu"
    threads: int | None = Field(1, ge=1, description="torch CPU threads (None: leave torch's default)")
    seed: int = 0

    @model_validator(mode="after")
    def _levels_have_checkpoints(self) -> GenerateConfig:
        steps = set(checkpoint_steps(self.train))
        missing = sorted({lv.checkpoint for lv in self.levels} - steps)
        if missing:
            raise ValueError(f"levels use checkpoints {missing} that training never writes (it saves every "
                             f"{self.train.checkpoint_every} steps up to {self.train.steps}); pick from those")
        names = [lv.name for lv in self.levels]
        if len(set(names)) != len(names):
            raise ValueError(f"level names must be unique, got {names}")
        return self


def checkpoint_steps(spec: TrainSpec) -> list[int]:
    """The training steps at which a checkpoint is written."""
    return sorted({*range(spec.checkpoint_every, spec.steps + 1, spec.checkpoint_every), spec.steps})


def load_generate_config(path: str | Path) -> GenerateConfig:
    """Read and validate a generate config; errors name the bad key."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"generate config {str(p)!r} does not exist (see configs/generate_digits.yaml)")
    try:
        check_size(p.stat().st_size, f"generate config {str(p)!r}")
        data = load_bounded(p.read_text(), f"generate config {str(p)!r}")  # size and alias caps
    except YAMLTooLargeError as exc:
        raise DataError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise DataError(f"generate config {str(p)!r} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise DataError(f"generate config {str(p)!r} must hold a mapping with name, out_dir and levels")
    try:
        return GenerateConfig.model_validate(data)
    except ValidationError as err:
        msgs = [f"{'.'.join(str(x) for x in e['loc']) or 'config'}: {e['msg']}" for e in err.errors()]
        raise DataError(f"generate config {p}: " + "; ".join(msgs)) from None


# ---------------------------------------------------------------------------------------------------------
# model, scheduler, sampler


def build_unet(spec: UNetSpec, *, channels: int, size: int, num_classes: int) -> Any:
    """diffusers' UNet2DModel for (channels, size, size) images with a learned class embedding."""
    from diffusers import UNet2DModel

    n = len(spec.block_out_channels)
    if size % (2 ** (n - 1)):
        raise DataError(f"image size {size} must be divisible by 2^{n - 1} for {n} UNet levels; use fewer "
                        f"block_out_channels or resize the data (image size {size})")
    return UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels,
                       block_out_channels=spec.block_out_channels, layers_per_block=spec.layers_per_block,
                       down_block_types=("DownBlock2D",) * n, up_block_types=("UpBlock2D",) * n,
                       norm_num_groups=spec.norm_num_groups, num_class_embeds=num_classes)


def make_scheduler(kind: str, spec: TrainSpec) -> Any:
    """diffusers' DDIM or DDPM scheduler on the training noise schedule."""
    from diffusers import DDIMScheduler, DDPMScheduler

    cls = DDIMScheduler if kind == "ddim" else DDPMScheduler
    return cls(num_train_timesteps=spec.num_train_timesteps, beta_schedule=spec.beta_schedule, clip_sample=True)


def sample(unet: Any, scheduler: Any, labels: Tensor, *, steps: int, seed: int = 0, batch_size: int = 500,
           device: str | torch.device = "cpu") -> Tensor:
    """Draw one image per label: start from Gaussian noise and run `scheduler` for `steps` steps.

    Returns:
        images in [0, 1], (N, C, H, W) float on the CPU.
    """
    dev = torch.device(device)
    cfg = unet.config
    gen = torch.Generator(device="cpu").manual_seed(seed)
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps.to(dev)
    out = []
    unet.eval()
    with torch.inference_mode():
        for start in range(0, len(labels), batch_size):
            y = labels[start:start + batch_size].to(dev)
            x = torch.randn((len(y), cfg.in_channels, cfg.sample_size, cfg.sample_size), generator=gen).to(dev)
            for t in timesteps:
                eps = unet(x, t, class_labels=y).sample
                x = scheduler.step(eps, t, x, generator=gen).prev_sample
            out.append(((x.clamp(-1, 1) + 1) / 2).float().cpu())
    return torch.cat(out)


def balanced_labels(n: int, num_classes: int) -> Tensor:
    """n labels, every class equally often (the first n % num_classes classes once more)."""
    return torch.arange(n) % num_classes


# ---------------------------------------------------------------------------------------------------------
# training


def _checkpoint_path(out_dir: Path, step: int) -> Path:
    return out_dir / "checkpoints" / f"step_{step:07d}.pt"


def _save(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train_generator(cfg: GenerateConfig, images: Tensor, labels: Tensor, num_classes: int, out_dir: Path) -> float:
    """Train the UNet on images in [0, 1]; resumes from the last checkpoint. Returns the training seconds spent."""
    spec = cfg.train
    dev = torch.device(cfg.device)
    c, size = images.shape[1], images.shape[-1]
    # The initial weights come from the config's seed, not from whatever the process drew before (training
    # the digits FID extractor when it is not cached yet draws from the global generator: a fresh machine
    # and a cached one used to start from different weights, and so give different FIDs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        unet = build_unet(cfg.unet, channels=c, size=size, num_classes=num_classes).to(dev)
    opt = torch.optim.AdamW(unet.parameters(), lr=spec.lr, weight_decay=0.0)
    noise_sched = make_scheduler("ddpm", spec)
    alphas = noise_sched.alphas_cumprod.to(dev)
    done = [s for s in checkpoint_steps(spec) if _checkpoint_path(out_dir, s).is_file()]
    start = max(done, default=0)
    if start:
        state = torch.load(_checkpoint_path(out_dir, start), map_location=dev, weights_only=True)
        unet.load_state_dict(state["unet"])
        opt.load_state_dict(state["optimizer"])
        log.info("generator: resuming from step %d", start)
    if start >= spec.steps:
        return 0.0
    x_all = (images * 2 - 1).to(dev)  # (N, C, H, W) in [-1, 1]
    y_all = labels.to(dev)
    gen = torch.Generator(device="cpu")
    wanted = set(checkpoint_steps(spec))
    unet.train()
    t0 = time.perf_counter()
    log_path = out_dir / "train_log.jsonl"
    running = 0.0
    for step in range(start + 1, spec.steps + 1):
        # each step's draws (batch, noise, timesteps) depend on (seed, step) only: a run resumed from any
        # checkpoint takes the same steps as one that never stopped
        gen.manual_seed(_step_seed(cfg.seed, step))
        torch.manual_seed(_step_seed(cfg.seed, step))  # anything inside the UNet that draws from the global one
        idx = torch.randint(0, len(y_all), (spec.batch_size,), generator=gen).to(dev)
        x0 = x_all[idx]
        noise = torch.randn(x0.shape, generator=gen).to(dev)
        t = torch.randint(0, spec.num_train_timesteps, (len(idx),), generator=gen).to(dev)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise  # q(x_t | x_0)
        loss = F.mse_loss(unet(xt, t, class_labels=y_all[idx]).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += float(loss.detach())
        if step in wanted:
            _save(_checkpoint_path(out_dir, step), {"unet": unet.state_dict(), "optimizer": opt.state_dict(),
                                                    "step": step})
            n_since = step - max([s for s in wanted if s < step], default=0)
            with log_path.open("a") as fh:
                fh.write(json.dumps({"step": step, "loss": running / n_since,
                                     "seconds": time.perf_counter() - t0}) + "\n")
            log.info("generator step %d/%d: loss %.4f (%.0f s)", step, spec.steps, running / n_since,
                     time.perf_counter() - t0)
            running = 0.0
    return time.perf_counter() - t0


def _step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step) % 2**63


def load_unet(cfg: GenerateConfig, out_dir: Path, step: int, *, channels: int, size: int, num_classes: int) -> Any:
    """The UNet saved at training step `step`."""
    path = _checkpoint_path(out_dir, step)
    if not path.is_file():
        raise DataError(f"no generator checkpoint {path}; run `robustperf data generate` to train it")
    unet = build_unet(cfg.unet, channels=channels, size=size, num_classes=num_classes)
    unet.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["unet"])
    return unet.to(torch.device(cfg.device)).eval()


# ---------------------------------------------------------------------------------------------------------
# the whole command


@dataclass(frozen=True)
class LevelResult:
    """One generated set: where it is, how it was made, and its measured FID."""

    name: str
    path: str
    checkpoint: int
    sampler: str
    steps: int
    n_images: int
    fid: float
    extractor: str
    sample_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class GenerateResult:
    """What `generate` produced: the levels (best first is not implied: config order) and the time spent."""

    name: str
    levels: tuple[LevelResult, ...]
    train_seconds: float
    total_seconds: float
    real_fid: float  # FID of the real test split against the same reference: the floor for this many images

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "train_seconds": self.train_seconds, "total_seconds": self.total_seconds,
                "real_fid": self.real_fid, "levels": [lv.to_dict() for lv in self.levels]}


def generate(cfg: GenerateConfig) -> GenerateResult:
    """Train (or resume) the generator, then sample, write and measure every level that is not written yet."""
    from robustperf.data.features import create_extractor
    from robustperf.data.fid import default_extractor, load_images, measure_fid, write_fid_meta

    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    out_dir = Path(cfg.out_dir).expanduser()
    images, labels = load_images(cfg.dataset, split="train", root=cfg.root)
    num_classes = int(labels.max()) + 1
    c, size = images.shape[1], images.shape[-1]
    # the extractor first: a missing weights file must fail before minutes of training
    ext_name = default_extractor(cfg.dataset) if cfg.extractor == "auto" else cfg.extractor
    extractor = create_extractor(ext_name, cache=cfg.fid_cache, device=cfg.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "generate_config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
    train_seconds = train_generator(cfg, images, labels, num_classes, out_dir)
    n = cfg.n_per_level or len(labels)
    wanted = balanced_labels(n, num_classes)
    test_images, _ = load_images(cfg.dataset, split="test", root=cfg.root)
    real = measure_fid(test_images, cfg.dataset, extractor=extractor, cache=cfg.fid_cache)
    results = []
    for level in cfg.levels:
        level_dir = out_dir / "levels" / level.name
        meta_path = level_dir / "meta.json"
        if meta_path.is_file() and json.loads(meta_path.read_text()).get("fid_extractor") == extractor.name:
            meta = json.loads(meta_path.read_text())
            results.append(LevelResult(level.name, str(level_dir), level.checkpoint, level.sampler, level.steps,
                                       meta["fid_n_images"], meta["fid"], meta["fid_extractor"],
                                       meta.get("sample_seconds", 0.0)))
            continue
        unet = load_unet(cfg, out_dir, level.checkpoint, channels=c, size=size, num_classes=num_classes)
        t0 = time.perf_counter()
        x = sample(unet, make_scheduler(level.sampler, cfg.train), wanted, steps=level.steps, seed=cfg.seed,
                   batch_size=cfg.sample_batch_size, device=cfg.device)
        seconds = time.perf_counter() - t0
        x = _write_set(level_dir, x, wanted)  # the FID is measured on the uint8 pixels that are stored
        fid = measure_fid(x, cfg.dataset, extractor=extractor, cache=cfg.fid_cache)
        write_fid_meta(level_dir, fid, {"source": f"{cfg.name}: diffusers UNet2DModel step {level.checkpoint}, "
                                                  f"{level.sampler} {level.steps} steps",
                                        "num_classes": num_classes, "generator_checkpoint": level.checkpoint,
                                        "sampler": level.sampler, "sampler_steps": level.steps,
                                        "sample_seconds": seconds, "images_per_second": n / seconds})
        log.info("level %s: FID %.3f (%s), %.1f images/s", level.name, fid.fid, fid.extractor, n / seconds)
        results.append(LevelResult(level.name, str(level_dir), level.checkpoint, level.sampler, level.steps, n,
                                   fid.fid, fid.extractor, seconds))
    result = GenerateResult(cfg.name, tuple(results), train_seconds, time.perf_counter() - t_start, real.fid)
    (out_dir / "generate_result.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result


def _write_set(directory: Path, images: Tensor, labels: Tensor) -> Tensor:
    """images in [0, 1] (N, C, H, W) -> the synthetic-directory format (uint8 NHWC + labels); returns what was
    stored, as floats in [0, 1]."""
    directory.mkdir(parents=True, exist_ok=True)
    pixels = torch.round(images * 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    for name, array in (("images.npy", pixels), ("labels.npy", labels.numpy().astype(np.int64))):
        tmp = directory / (name + ".tmp.npy")
        np.save(tmp, array)
        os.replace(tmp, directory / name)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
