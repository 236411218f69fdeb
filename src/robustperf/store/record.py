"""The run record: one directory per run, the source of truth.

::

    runs/<run_id>/
      config.json        resolved RunConfig (every default filled in)
      metrics.jsonl      one line per epoch (and per logged step), append-only
      result.json        status, final metrics, cost, evaluations, provenance
      checkpoints/       last.pt, best.pt (tensors and plain data only)
      evaluations/       outputs of `robustperf evaluate` (per-point flags, adversarial examples)

`result.json` is rewritten atomically whenever the status changes; its
``status`` is ``running``, ``finished``, ``failed`` (with ``failure_reason``), ``interrupted`` (a stop
signal; resumable from the checkpoint its ``failure_reason`` names) or ``corrupt`` (a damaged record that
no checkpoint could rebuild; see `robustperf.store.repair`). Reading a damaged file raises
`DamagedFileError` naming the file and the fix; so does valid JSON of the wrong shape (``[]``,
``"final": "oops"``): records are checked against the typed schema (`check_result`, `check_config`) on
every read, so one bad file makes one run unreadable, never a reader of the whole directory crash.
Metrics rows that are not JSON objects are dropped (`read_metrics_counted` says how many).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import subprocess
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from robustperf.store.blocks import CostRecord, Metrics, RecordBlock
from robustperf.store.io import DamagedFileError, append_jsonl, read_json, write_json_atomic
from robustperf.store.metrics_rows import MetricsRow, parse_rows


class RunStatus(str, Enum):
    """A run's ``status`` in result.json, stored as its string value (``"finished"``), which it also equals.

    Only `robustperf.store.session` writes one: `RunSession` (running, finished, failed, interrupted) and its
    `record_rebuilt` / `record_corrupt` for what `robustperf.store.repair` finds.
    """

    PENDING = "pending"  # no result.json yet (the index's word; never written)
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"  # an error; ``failure_reason`` says which
    INTERRUPTED = "interrupted"  # a stop signal or Ctrl-C; resumable from the last checkpoint
    CORRUPT = "corrupt"  # a damaged record no checkpoint could rebuild

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


STATUSES: frozenset[str] = frozenset(status.value for status in RunStatus)
_OPTIONAL_TEXT = ("failure_reason", "started_at", "ended_at")
_MAPPINGS = ("final", "best", "cost", "evaluations", "provenance")


def _kind(value: Any) -> str:
    return "null" if value is None else {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}")


def check_result(data: Any, path: str | Path, fix: str) -> dict[str, Any]:
    """`data` (parsed result.json) if it has the record's shape, else `DamagedFileError` naming the field.

    The shape: an object; ``status`` one of `STATUSES`; ``final``/``best``/``cost``/``evaluations``/
    ``provenance`` objects (or null); text fields text (or null); the numeric fields of ``final``, ``best``
    and ``cost`` numbers (or null).
    """
    if not isinstance(data, dict):
        raise DamagedFileError(path, f"wrong shape: holds {_kind(data)}, not an object", fix)
    problems = []
    if data.get("status", "pending") not in STATUSES:
        problems.append(f"status {data.get('status')!r} is not one of {', '.join(sorted(STATUSES))}")
    for key in ("run_id", "kind"):
        if key in data and not isinstance(data[key], str):
            problems.append(f"{key} is {_kind(data[key])}, not a string")
    for key in _OPTIONAL_TEXT:
        if data.get(key) is not None and not isinstance(data[key], str):
            problems.append(f"{key} is {_kind(data[key])}, not a string")
    for key in _MAPPINGS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            problems.append(f"{key} is {_kind(data[key])}, not an object")
    for key, block in _BLOCKS.items():
        values = data.get(key)
        if isinstance(values, dict):
            problems += [f"{key}.{name} is {_kind(values[name])}, not a number" for name in block.numeric()
                         if not _number_or_null(values.get(name))]
    if problems:
        raise DamagedFileError(path, "wrong shape: " + "; ".join(problems), fix)
    return data


def _number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def check_config(data: Any, path: str | Path, fix: str) -> dict[str, Any]:
    """`data` (parsed config.json) if it is an object whose sections are objects, else `DamagedFileError`."""
    if not isinstance(data, dict):
        raise DamagedFileError(path, f"wrong shape: holds {_kind(data)}, not an object", fix)
    problems = [f"{key} is {_kind(value)}, not an object" for key, value in data.items()
                if key in ("data", "model", "method", "optim", "eval", "cost", "runtime") and not isinstance(value, dict)]
    if problems:
        raise DamagedFileError(path, "wrong shape: " + "; ".join(problems), fix)
    return data


def utcnow() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunRecord:
    """What `result.json` holds. Numbers are numbers; round-trips through JSON.

    ``final``, ``best`` and ``cost`` are typed blocks (`Metrics`, `CostRecord`) that read like dicts;
    plain dicts given here are converted.
    """

    run_id: str
    status: RunStatus = RunStatus.PENDING
    failure_reason: str | None = None
    final: Metrics = field(default_factory=Metrics)  # final clean/robust accuracy, losses
    best: Metrics = field(default_factory=Metrics)  # metrics of the best epoch
    cost: CostRecord = field(default_factory=CostRecord)  # raw joules/seconds/FLOPs + derived, with constants
    evaluations: dict[str, Any] = field(default_factory=dict)  # name -> summary from `robustperf evaluate`
    provenance: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    ended_at: str | None = None
    kind: str = "train"  # "train" or "llm"

    def __post_init__(self) -> None:
        if not isinstance(self.status, RunStatus):
            try:
                self.status = RunStatus(self.status)
            except ValueError:
                raise ValueError(f"run {self.run_id}: status {self.status!r} is not one of "
                                 f"{', '.join(s.value for s in RunStatus)}; repair it with `robustperf runs repair`"
                                 ) from None
        for name, block in _BLOCKS.items():
            setattr(self, name, block.from_dict(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if isinstance(value, RecordBlock) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


_BLOCKS: dict[str, type[RecordBlock]] = {"final": Metrics, "best": Metrics, "cost": CostRecord}


class RunDir:
    """Paths and atomic I/O of one run directory. Writes nothing outside `path`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_run(cls, runs_dir: str | Path, run_id: str) -> RunDir:
        return cls(Path(runs_dir) / run_id)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def result_path(self) -> Path:
        return self.path / "result.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def evaluations_dir(self) -> Path:
        return self.path / "evaluations"

    def exists(self) -> bool:
        return self.config_path.exists()

    def repair_hint(self) -> str:
        """What a message about a damaged file of this run tells the user to do."""
        return (f"repair it with `robustperf runs repair --runs-dir {self.path.parent}` (rebuilds result.json from "
                f"the last checkpoint, else marks the run corrupt) or delete {self.path}")

    def write_config(self, resolved: dict[str, Any]) -> None:
        write_json_atomic(self.config_path, resolved)

    def read_config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise FileNotFoundError(f"{self.path} is not a run directory (no config.json)")
        return check_config(read_json(self.config_path, fix=self.repair_hint()), self.config_path, self.repair_hint())

    def append_metrics(self, row: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, row)

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every metrics row that is a JSON object (a torn or garbage line is dropped: `read_metrics_counted`)."""
        return self.read_metrics_counted()[0]

    def read_metric_rows(self) -> list[MetricsRow]:
        """The training loop's train and eval rows, typed (`robustperf.store.metrics_rows`); events and rows of
        the wrong shape are left out."""
        return parse_rows(self.read_metrics(), str(self.metrics_path))

    def read_metrics_counted(self) -> tuple[list[dict[str, Any]], list[int]]:
        """The metrics rows that are JSON objects, and the 1-based numbers of the non-blank lines dropped."""
        if not self.metrics_path.exists():
            return [], []
        rows, dropped = [], []
        for number, line in enumerate(self.metrics_path.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:  # not JSON, or not UTF-8
                row = None
            if isinstance(row, dict):
                rows.append(row)
            else:
                dropped.append(number)
        return rows, dropped

    def read_result_dict(self) -> dict[str, Any] | None:
        """result.json as checked JSON (`check_result`), or None when there is none yet."""
        if not self.result_path.exists():
            return None
        return check_result(read_json(self.result_path, fix=self.repair_hint()), self.result_path, self.repair_hint())

    def read_record(self) -> RunRecord | None:
        data = self.read_result_dict()
        return None if data is None else RunRecord.from_dict(data)

    def write_record(self, record: RunRecord) -> None:
        write_json_atomic(self.result_path, record.to_dict())

    def update_record(self, **changes: Any) -> RunRecord:
        """Read-modify-write of result.json (one writer per run: rank 0 / the run's process)."""
        record = self.read_record() or RunRecord(run_id=self.run_id)
        for key, value in changes.items():
            current = getattr(record, key)
            if isinstance(current, RecordBlock) and value is not None:
                value = current.merged(value)
            elif isinstance(value, dict) and isinstance(current, dict):
                value = {**current, **value}
            setattr(record, key, value)
        record.__post_init__()
        self.write_record(record)
        return record

    def is_finished(self) -> bool:
        rec = self.read_record()
        return rec is not None and rec.status is RunStatus.FINISHED


def _git_sha() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else `platform.processor()`), or "unknown CPU"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_machine() -> str:
    """One line naming the machine a measurement ran on: architecture, CPU count and model, GPU if any."""
    text = f"{platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()})"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}"
        else:
            text += ", no GPU"
    except ImportError:
        pass
    return text


def provenance(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Package version, git SHA, python/torch versions, host. torch is optional here."""
    from robustperf import __version__

    info: dict[str, Any] = {
        "robustperf_version": __version__,
        "git_sha": _git_sha(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except ImportError:
        pass
    if extra:
        info.update(extra)
    return info
