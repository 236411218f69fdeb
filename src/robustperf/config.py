"""Run configuration: one frozen, validated `RunConfig` per training run.

A config is loaded from YAML, overridden with ``section.key=value`` strings
(the CLI's ``--set``), validated (unknown keys are rejected and named), and
saved fully resolved (every default filled in) with the run. The run id is a
hash of that resolved config, so the same config always maps to the same run
directory, which is what makes sweeps idempotent.

eps-like fields accept fractions such as ``"8/255"`` as well as floats.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from robustperf.bounded_yaml import YAMLTooLargeError, check_size, load_bounded
from robustperf.threat import LEGACY_EVAL_EPS, ThreatModel, asked_eval_eps, evaluation_threat, read_eps


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key and the fix."""


def _parse_fraction(value: Any) -> Any:
    """Accept "8/255" (and "8 / 255") for float fields."""
    if isinstance(value, str) and "/" in value:
        try:
            return read_eps(value)
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"cannot read {value!r} as a fraction like '8/255'") from exc
    return value


Frac = Annotated[float, BeforeValidator(_parse_fraction)]
Scalar = int | float | str | bool


class _Section(BaseModel):
    # inf and nan are refused in every float field (lr=inf used to fail only at step 5-10, warmup_epochs=inf
    # with a traceback)
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class DataConfig(_Section):
    """Where the images come from and how they are batched."""

    dataset: str = Field("digits", description="digits | cifar10 | cifar100 | imagefolder | synthetic | random")
    root: str | None = Field(None, description="local directory of the data set (not needed for digits)")
    download: bool = Field(False, description="fetch CIFAR into `root` if missing (needs a network)")
    n_train: int | None = Field(None, ge=1, description="use the first n_train (seeded shuffle) training samples")
    n_test: int | None = Field(None, ge=1, description="use at most n_test test samples")
    image_size: int | None = Field(None, ge=8, description="resize inputs to this side length")
    augmentation: Literal["none", "crop_flip"] = "none"
    synthetic_path: str | None = Field(None, description=".npz or directory of .npy memmaps with images, labels")
    synthetic_fid: float | None = Field(None, ge=0, description="FID tag of the synthetic set (data quality)")
    synthetic_fraction: float = Field(0.0, ge=0.0, le=1.0, description="share of synthetic images per batch")
    batch_size: int = Field(128, ge=1, description="per process (global batch = batch_size x world size)")
    eval_batch_size: int = Field(256, ge=1)
    num_workers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _synthetic_consistent(self) -> DataConfig:
        if self.synthetic_fraction > 0 and not self.synthetic_path:
            raise ValueError("synthetic_fraction > 0 needs data.synthetic_path (an .npz or .npy directory)")
        return self


class ModelConfig(_Section):
    """Architecture by registry name plus its keyword arguments."""

    name: str = Field("tiny_cnn", description="a name from `robustperf models list`")
    kwargs: dict[str, Scalar] = Field(default_factory=dict, description="e.g. depth, width, activation")


class ThreatConfig(_Section):
    """A threat model as configured (``method.attack``: the one trained against; ``eval.attack``: the
    per-epoch evaluation's attack): parsed into a frozen `robustperf.threat.ThreatModel` by `threat_model`.
    (Named apart from `robustperf.attacks.AttackConfig`, an attack's runtime settings.)"""

    norm: Literal["linf", "l2"] = "linf"
    eps: Frac = 8 / 255
    step_size: Frac = 2 / 255
    n_steps: int = Field(10, ge=0)
    loss: Literal["ce", "cw", "kl"] = "ce"
    random_start: bool = True

    @field_validator("eps")
    @classmethod
    def _eps_in_pixel_range(cls, eps: float, info: ValidationInfo) -> float:
        # inputs are pixels in [0, 1]: an L-inf radius above 1 (eps: 8 meant as 8/255) perturbs nothing sensible
        return check_eps(eps, info.data.get("norm", "linf"))

    def threat_model(self) -> ThreatModel:
        """This section as a frozen `ThreatModel` (one run of the attack: training attacks do not restart)."""
        return ThreatModel(norm=self.norm, eps=self.eps, step_size=self.step_size, n_steps=self.n_steps,
                           loss=self.loss, random_start=self.random_start)


MAX_L2_EPS = 6.0  # twice the largest L2 radius in the robust-training literature (3.0, ImageNet)


def check_eps(eps: float, norm: str) -> float:
    """Refuse an eps outside the data's range: negative, or above 1 for L-inf (pixel units; 8/255, not 8)."""
    if not eps >= 0:
        raise ValueError(f"eps={eps} must be >= 0 (pixel units, e.g. 8/255)")
    if norm == "l2" and eps > MAX_L2_EPS:
        raise ValueError(f"eps={eps:g} (L2) is larger than any radius in use (0.5 on CIFAR, 3.0 on ImageNet; "
                         f"at most {MAX_L2_EPS:g} here): eps is in pixel units of inputs in [0, 1]")
    if norm == "linf" and eps > 1:
        raise ValueError(f"eps={eps:g} is outside the [0, 1] pixel range of the inputs: eps is in pixel units, "
                         f"write {eps:g}/255 if you mean {eps:g} on the 0-255 scale")
    return eps


class AWPConfig(_Section):
    """Adversarial weight perturbation (Wu et al. 2020) on top of PGD-AT or TRADES."""

    gamma: float = Field(5e-3, gt=0)
    warmup_epochs: int = Field(0, ge=0)


class MethodConfig(_Section):
    """Training method by registry name, the attack it trains against, and its loss options."""

    name: str = Field("pgd_at", description="a name from `robustperf methods list`")
    attack: ThreatConfig = Field(default_factory=ThreatConfig)
    beta: float = Field(6.0, ge=0, description="TRADES / MART regulariser weight")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    awp: AWPConfig | None = None
    bn_mode: Literal["eval", "batch_frozen"] = Field(
        "eval", description="BatchNorm while attacking: eval mode, or batch stats with frozen running stats"
    )
    kwargs: dict[str, Scalar] = Field(
        default_factory=dict, description="method-specific settings, e.g. {replays: 4} for free_at (methods list)"
    )


class OptimConfig(_Section):
    """Optimiser, schedule, length of training and weight averaging."""

    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    no_decay_on_norm: bool = Field(True, description="no weight decay on norm layers and biases")
    schedule: Literal["constant", "cosine", "onecycle", "piecewise"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    milestones: tuple[float, ...] = Field((0.5, 0.75), description="piecewise: fractions of training")
    epochs: int = Field(10, ge=1)
    samples: int | None = Field(None, ge=1, description="train on this many samples instead of epochs")
    ema_decay: float | None = Field(None, gt=0, lt=1, description="EMA of weights, e.g. 0.995")
    ema_warmup_steps: int | None = Field(
        None, ge=0, description="None: ramp the decay up as min(decay, (1+t)/(10+t)); N: copy the weights for N steps"
    )
    grad_clip: float | None = Field(None, gt=0)


class EvalConfig(_Section):
    """Clean and PGD accuracy on a fixed held-out subset after each epoch.

    ``attack.eps`` is the evaluation radius, except its default 8/255, which means "the training eps"
    (`robustperf.threat.evaluation_eps`; every config saved before the rule carries it). The step is
    ``attack.step_size`` at radius ``attack.eps`` and scales with the radius evaluated (2/255 at 8/255 is
    eps/4 at any eps). ``attack.norm`` is not used: a run is evaluated in its training norm, and writing another is refused.
    """

    every_n_epochs: int = Field(1, ge=1)
    n_examples: int = Field(512, ge=1)
    attack: ThreatConfig = Field(default_factory=lambda: ThreatConfig(n_steps=40, loss="cw", random_start=True))
    select_best_on: Literal["robust_acc", "clean_acc", "adv_loss"] = "robust_acc"


class CostConfig(_Section):
    """Constants for converting energy and time into kWh, CO2 and USD (overridable, sourced)."""

    gpu: str | None = Field(None, description="GPU name for pricing, e.g. h100 (None: detect)")
    pue: float = Field(1.58, ge=1.0, description="Strubell et al. 2019")
    grid: str = Field("gcp_us_central1_2019", description="grid-intensity preset (see `robustperf cost grids`)")
    co2_g_per_kwh: float | None = Field(None, ge=0, description="overrides the preset")
    usd_per_kwh: float = Field(0.12, ge=0, description="US average electricity price (Debenedetti et al. 2023)")
    usd_per_gpu_hour: float | None = Field(None, ge=0)
    energy_meter: str = Field("auto", description="auto | nvml | sampling | rapl | estimate | fake | none")
    watts: float | None = Field(
        None, gt=0, description="stated mean power for an energy estimate where nothing can be metered"
    )
    count_flops: bool = True


class RuntimeConfig(_Section):
    """Where and how the run executes."""

    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    deterministic: bool = False
    checkpoint_every_n_epochs: int = Field(1, ge=1)
    checkpoint_every_n_steps: int | None = Field(
        None, ge=1, description="also write last.pt every this many steps (mid-epoch resume for long epochs)"
    )
    log_every_n_steps: int = Field(50, ge=1)
    progress: bool = True


class MLflowTrackingConfig(_Section):
    """Live logging to MLflow."""

    uri: str = Field("file:./mlruns", description="tracking URI: file:DIR, sqlite:///FILE or http://HOST")
    experiment: str = "robustperf"


class TensorBoardTrackingConfig(_Section):
    """Live logging to TensorBoard event files in ``dir/<run_id>/``."""

    dir: str = "tensorboard"


class WandbTrackingConfig(_Section):
    """Live logging to Weights & Biases (offline by default: no account, `wandb sync` uploads later)."""

    project: str = "robustperf"
    entity: str | None = None
    mode: Literal["offline", "online"] = "offline"
    dir: str = Field(".", description="W&B writes its run folders under DIR/wandb/")


class TrackingConfig(_Section):
    """Experiment trackers a run logs to while it trains; all off by default. A failing tracker is logged
    and skipped, never failing the run. Not part of the run id (where a run is logged is not what it is)."""

    mlflow: MLflowTrackingConfig | None = None
    tensorboard: TensorBoardTrackingConfig | None = None
    wandb: WandbTrackingConfig | None = None


class RunConfig(_Section):
    """Everything that determines a training run. Frozen; unknown keys are errors."""

    name: str | None = Field(None, description="human-readable prefix of the run id")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    # the threat models, parsed once when the config is validated (`threat`, `eval_threat`)
    _threat: ThreatModel = PrivateAttr()
    _eval_attack: ThreatModel = PrivateAttr()
    _eval_threat: ThreatModel = PrivateAttr()

    @model_validator(mode="after")
    def _parse_threat_models(self) -> RunConfig:
        attack = self.eval.attack.threat_model()
        if attack.loss == "kl":  # the KL needs TRADES' clean target: the evaluation attacks the CW margin
            attack = attack.replace(loss="cw")
        self._threat = self.method.attack.threat_model()
        self._eval_attack = attack
        self._eval_threat = self.eval_threat_at(None)
        return self

    @property
    def threat(self) -> ThreatModel:
        """The threat model the run trains against (``method.attack``)."""
        return self._threat

    @property
    def eval_threat(self) -> ThreatModel:
        """The threat model the run is evaluated at: `eval_threat_at` with no radius asked."""
        return self._eval_threat

    def eval_threat_at(self, eps: float | None = None) -> ThreatModel:
        """The run's evaluation threat model: its training norm, the radius of `robustperf.threat.
        evaluation_eps` (the training eps unless ``eps`` (e.g. ``--eps``) or ``eval.attack.eps`` asks
        another), and the ``eval.attack`` settings with the step scaled to that radius."""
        asked = eps if eps is not None else asked_eval_eps(self.eval.attack.eps)
        return evaluation_threat(self._threat, self._eval_attack, asked)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str | None) -> str | None:
        # the name prefixes the run id, which names the run's directory
        from robustperf.names import SAFE_NAME_RULE, check_name

        if name is not None:
            try:
                check_name(name, "run name")
            except ValueError:
                raise ValueError(f"{name!r} is not a safe run name: use {SAFE_NAME_RULE}") from None
        return name

    def resolved(self) -> dict[str, Any]:
        """Every field, defaults included, as plain JSON-able data."""
        return self.model_dump(mode="json")

    @property
    def run_id(self) -> str:
        """`<name>-<hash>`: a stable hash of the resolved config (name and progress excluded)."""
        payload = self.resolved()
        payload.pop("name", None)
        payload.pop("tracking", None)  # where a run is logged live is not what the run is
        payload["runtime"].pop("progress", None)
        optim = payload["optim"]
        if optim["ema_decay"] is None and optim["ema_warmup_steps"] is None:
            optim["ema_warmup_steps"] = 0  # moot without EMA: keeps the run ids from before the None default
        if not payload["method"]["kwargs"]:
            del payload["method"]["kwargs"]  # keeps the run ids from before method.kwargs existed
        if payload["cost"].get("watts") is None:
            payload["cost"].pop("watts", None)  # likewise for cost.watts (how energy is estimated, not what runs)
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
        prefix = self.name or f"{self.method.name}-{self.model.name}"
        return f"{_slug(prefix)}-{digest}"

    def with_overrides(self, overrides: list[str] | dict[str, Any]) -> RunConfig:
        """A new config with ``section.key=value`` overrides applied and re-validated.

        Raises:
            ConfigError: an invalid value, or an ``eval.attack.eps`` that would not be the evaluation radius
                (see `refuse_unheeded_eval_eps`).
        """
        cfg = config_from_dict(apply_overrides(self.resolved(), overrides))
        refuse_unheeded_eval_eps({}, cfg, overrides)
        return cfg


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60] or "run"


def _parse_value(raw: str) -> Any:
    """Read an override's value as YAML (so 0.1, true, null, [1,2] work) but keep 8/255 a string."""
    try:
        return load_bounded(raw, f"override value {raw[:40]!r}")
    except yaml.YAMLError:
        return raw
    except YAMLTooLargeError as exc:  # an alias bomb through --set
        raise ConfigError(str(exc)) from None


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Apply dotted-key overrides to a nested dict (a copy is returned)."""
    out: dict[str, Any] = json.loads(json.dumps(data))
    items = overrides.items() if isinstance(overrides, dict) else (_split_override(o) for o in overrides)
    for key, value in items:
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {key!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = _parse_value(value) if isinstance(value, str) else value
    return out


def _split_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. optim.lr=0.05)")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def format_validation_error(err: ValidationError, what: str = "config") -> str:
    """One line naming every bad key of a pydantic error: the one formatter every config loader uses.

    ``invalid config: unknown key 'optim.lrr': remove it or check its spelling; data.n_train: Input should
    be greater than or equal to 1``.
    """
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key {loc!r}: remove it or check its spelling")
        else:
            msg = str(e["msg"]).removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}")
    return f"invalid {what}: " + "; ".join(parts)


def load_yaml_mapping(path: str | Path, what: str = "config file", example: str = "configs/quickstart.yaml",
                      allow_empty: bool = False) -> dict[str, Any]:
    """Read a YAML (or JSON) file that must hold a mapping; every problem is one `ConfigError` line.

    Raises:
        ConfigError: the file is missing, unreadable, empty (unless `allow_empty`), not YAML (with the line
            and column of the error), or not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {str(p)!r} does not exist (see {example} for an example)")
    try:
        check_size(p.stat().st_size, f"{what} {str(p)!r}")  # before reading it
        text = p.read_text(encoding="utf-8")
        loaded = load_bounded(text, f"{what} {str(p)!r}")  # size and alias-expansion caps
    except YAMLTooLargeError as exc:
        raise ConfigError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {str(p)!r} cannot be read ({exc}): check the path and its permissions") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{what} {str(p)!r} is not valid YAML{where}: {problem} (see {example})") from None
    if loaded is None:
        if allow_empty:
            return {}
        raise ConfigError(f"{what} {str(p)!r} is empty: give at least one section (see {example}), or run without "
                          "a file to use the defaults")
    if not isinstance(loaded, dict):
        raise ConfigError(f"{what} {str(p)!r} must hold a mapping of sections, not a {type(loaded).__name__} "
                          f"(see {example})")
    return loaded


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Validate a plain dict into a RunConfig; errors name every bad key."""
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None


_SECTIONS = ("data", "model", "method", "optim", "eval", "cost", "runtime")


def is_saved_config(data: dict[str, Any]) -> bool:
    """Whether ``data`` is a config as `RunConfig.resolved` writes it (a run's config.json, or a copy):
    every section, and every key of ``eval.attack``. Such a config keeps the old meaning of every value."""
    section = data.get("eval")
    attack = section.get("attack") if isinstance(section, dict) else None
    return all(k in data for k in _SECTIONS) and isinstance(attack, dict) and set(ThreatConfig.model_fields) <= set(attack)


def refuse_unheeded_eval_eps(data: dict[str, Any], cfg: RunConfig,
                             overrides: list[str] | dict[str, Any] | None = None) -> None:
    """Refuse an ``eval.attack.eps`` or ``eval.attack.norm`` that a user wrote (in ``data``, a config file's
    mapping, or in ``overrides``) but that would not be the per-epoch evaluation's radius or norm in ``cfg``.

    Only the old default 8/255 can be an unheeded eps: it means "the training eps"
    (`robustperf.threat.asked_eval_eps`), so writing it while training at another eps would evaluate
    elsewhere than written. A norm other than the training norm is never heeded (a run is evaluated in the
    norm it was trained in). A saved config (`is_saved_config`: every one carries both values) keeps the old
    meaning and is not refused.

    Raises:
        ConfigError: naming the fix.
    """
    written: dict[str, list[Any]] = {"eps": [], "norm": []}
    section = data.get("eval")
    attack = section.get("attack") if isinstance(section, dict) else None
    if isinstance(attack, dict) and not is_saved_config(data):
        for name, values in written.items():
            if attack.get(name) is not None:
                values.append(attack[name])
    if overrides:
        items = overrides.items() if isinstance(overrides, dict) else [_split_override(o) for o in overrides]
        for key, value in items:
            if key.startswith("eval.attack.") and key[len("eval.attack."):] in written and value is not None:
                written[key[len("eval.attack."):]].append(value)
    for value in written["eps"]:
        try:
            eps = float(_parse_fraction(value))
        except (TypeError, ValueError, ZeroDivisionError):
            continue  # not a number: the validation has already named it
        if eps == LEGACY_EVAL_EPS and cfg.eval_threat.eps != eps:
            raise ConfigError(
                f"eval.attack.eps=8/255 is its default, which means 'the training eps' (method.attack.eps="
                f"{cfg.threat.eps:g} here), not 8/255: remove eval.attack.eps to evaluate at the training eps, or "
                "evaluate the trained run at 8/255 with `robustperf evaluate RUN_DIR --eps 8/255`"
            )
    for norm in written["norm"]:
        if str(norm) != cfg.threat.norm:
            raise ConfigError(
                f"eval.attack.norm={norm} is not used: a run is evaluated during training in the norm it trains "
                f"in (method.attack.norm={cfg.threat.norm}); remove eval.attack.norm, or evaluate the trained run "
                f"in {norm} with `robustperf evaluate RUN_DIR --norm {norm} --eps EPS`"
            )


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> RunConfig:
    """Load a RunConfig from YAML (or JSON) and apply overrides. `path=None` gives the defaults.

    Raises:
        ConfigError: an unreadable file, an invalid value, or an ``eval.attack.eps``/``norm`` that would not
            be the evaluation's radius or norm (`refuse_unheeded_eval_eps`).
    """
    written: dict[str, Any] = load_yaml_mapping(path) if path is not None else {}
    data = apply_overrides(written, overrides) if overrides else written
    cfg = config_from_dict(data)
    refuse_unheeded_eval_eps(written, cfg, overrides)
    return cfg
