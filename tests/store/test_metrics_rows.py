"""Typed metrics rows (`robustperf.store.metrics_rows`): the loop writes metrics.jsonl through `TrainRow` and
`EvalRow`, readers read it back through them, and the JSON lines are the ones the loop always wrote."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from robustperf.config import RunConfig
from robustperf.store import RunDir
from robustperf.store.io import dumps
from robustperf.store.metrics_rows import EvalRow, TrainRow, parse_row, parse_rows

LEGACY = Path(__file__).parents[1] / "fixtures" / "legacy_run" / "legacy-361d4f03516f" / "metrics.jsonl"


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_legacy_rows_read_back_into_types_and_write_the_same_json() -> None:
    typed = 0
    for line in _lines(LEGACY):
        row = parse_row(json.loads(line))
        if row is None:
            assert json.loads(line)["kind"] == "event"
            continue
        typed += 1
        assert dumps(row.to_dict()) == line  # same keys, same order, same numbers
    assert typed == 3  # two train rows and one eval row before the interrupt
    train = next(r for r in (parse_row(json.loads(line)) for line in _lines(LEGACY)) if isinstance(r, TrainRow))
    assert train.loss == pytest.approx(2.422802686691284) and train.values["adv_acc"] == 0.0625 and train.step == 2


def test_rows_of_the_wrong_shape_are_refused_naming_the_field(caplog) -> None:
    with pytest.raises(ValueError, match="step"):
        TrainRow(step="3", values={"loss": 1.0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="taken by the row's own fields"):
        TrainRow(step=3, values={"loss": 1.0, "lr": 0.1})
    with pytest.raises(ValueError, match="robust_acc"):
        EvalRow.from_dict({"kind": "eval", "step": 1, "robust_acc": "high"})
    rows = [{"kind": "train", "step": 1, "loss": 2.0}, {"kind": "eval", "step": "x"}, {"kind": "event", "step": 2},
            {"kind": "train", "step": 3, "loss": None}]
    with caplog.at_level(logging.WARNING):
        parsed = parse_rows(rows)
    assert [type(r).__name__ for r in parsed] == ["TrainRow", "TrainRow"]
    assert parsed[1].to_dict() == {"loss": None, "kind": "train", "step": 3}  # a non-finite mean stays null
    assert "metrics row 2 left out" in caplog.text


def test_overfitting_flag_and_its_epoch_are_written_together() -> None:
    row = EvalRow(step=4, epoch=1, robust_acc=0.2, fgsm_acc=0.9, catastrophic_overfitting=True, co_epoch=None)
    assert list(row.to_dict())[-2:] == ["catastrophic_overfitting", "co_epoch"]  # null epoch kept, as before
    assert "co_epoch" not in EvalRow(step=4, catastrophic_overfitting=False).to_dict()


def _tiny(**overrides: object) -> RunConfig:
    base = {"data.dataset": "digits", "data.n_train": 96, "data.batch_size": 32, "model.name": "tiny_cnn",
            "model.kwargs": {"width": 4}, "method.name": "fast_at", "method.attack.eps": 0.1,
            "method.attack.step_size": 0.1, "method.attack.n_steps": 1, "optim.epochs": 2, "eval.n_examples": 32,
            "eval.attack.n_steps": 2, "runtime.device": "cpu", "runtime.log_every_n_steps": 2,
            "runtime.progress": False, "cost.energy_meter": "fake"}
    return RunConfig().with_overrides({**base, **overrides})


def test_the_loop_writes_its_rows_through_the_types(tmp_path: Path, monkeypatch) -> None:
    from robustperf.store import metrics_rows
    from robustperf.training import train

    built: list[str] = []
    for cls in (metrics_rows.TrainRow, metrics_rows.EvalRow):
        original = cls.to_dict
        monkeypatch.setattr(cls, "to_dict", lambda self, _o=original: built.append(self.KIND) or _o(self))
    rd = train(_tiny(), tmp_path)
    lines = _lines(RunDir(rd.path).metrics_path)
    kinds = [json.loads(line)["kind"] for line in lines]
    assert sorted(built) == sorted(kinds) and {"train", "eval"} <= set(kinds)  # every row went through its type
    rows = RunDir(rd.path).read_metric_rows()
    assert [dumps(r.to_dict()) for r in rows] == lines  # read back through the types: the same lines
    evals = [r for r in rows if isinstance(r, EvalRow)]
    assert evals[-1].fgsm_acc is not None and evals[-1].catastrophic_overfitting is False  # single-step: FGSM watched
    assert list(json.loads(lines[-1])) == ["kind", "clean_acc", "robust_acc", "clean_loss", "adv_loss", "adv_ce",
                                           "n_eval", "fgsm_acc", "epoch", "step", "samples_seen", "train_loss",
                                           "eval_seconds", "n_params", "catastrophic_overfitting"]
    record = RunDir(rd.path).read_record()
    assert record.final["robust_acc"] == evals[-1].robust_acc and record.final["catastrophic_overfitting"] is False


def test_the_overfitting_watch_flags_the_row_and_keeps_the_first_epoch() -> None:
    from robustperf.training.loop import _watch_overfitting

    row = EvalRow(step=8, epoch=3, robust_acc=0.05, fgsm_acc=0.9)
    flagged = _watch_overfitting({"robust_acc": 0.5, "fgsm_acc": 0.5, "epoch": 2}, row)
    assert flagged.catastrophic_overfitting is True and flagged.co_epoch == 3
    later = _watch_overfitting(flagged.metrics(), EvalRow(step=12, epoch=4, robust_acc=0.5, fgsm_acc=0.5))
    assert later.catastrophic_overfitting is True and later.co_epoch == 3  # kept once seen, with its first epoch
    healthy = _watch_overfitting({"robust_acc": 0.4, "fgsm_acc": 0.5}, EvalRow(step=4, robust_acc=0.45, fgsm_acc=0.6))
    assert healthy.catastrophic_overfitting is False and "co_epoch" not in healthy.to_dict()
