"""The index schema (`robustperf.store.schema`): every column key the code spells is declared there, the
declared columns are what the index, `runs list` and the tracking export show, and a typo fails loudly."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robustperf.config import RunConfig
from robustperf.store import CostRecord, Metrics, RunDir, load_index, schema
from robustperf.store.index import flatten

SRC = Path(__file__).parents[2] / "src" / "robustperf"
# a string that reads like an index column key ("final.robust_acc", "config.data.synthetic_fid")
COLUMN_LIKE = re.compile(r"^(final|best|cost|robust|config|evaluations)\.[a-z_]+(\.[A-Za-z0-9_+-]+)*$")
FILE_NAMES = re.compile(r"\.(json|jsonl|pt|yaml|sqlite)$")


def _column_literals() -> list[tuple[str, int, str]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "schema.py" and path.parent.name == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and COLUMN_LIKE.match(node.value)
                    and not FILE_NAMES.search(node.value)):
                out.append((str(path.relative_to(SRC)), node.lineno, node.value))
    return out


def test_every_column_key_spelled_in_the_code_is_declared_in_the_schema() -> None:
    literals = _column_literals()
    undeclared = [f"{path}:{line}: {key}" for path, line, key in literals if not schema.is_declared(key)]
    assert not undeclared, "undeclared index columns (declare them in store/schema.py):\n" + "\n".join(undeclared)


def test_the_check_catches_a_typo() -> None:
    assert not schema.is_declared("final.robust_acs") and not schema.is_declared("cost.energy_kwhh")
    assert schema.is_declared("cost.constants.pue.value")  # inside the declared object column cost.constants
    assert schema.is_declared("evaluations.study_best_apgd-ce_360.robust_acc")
    with pytest.raises(AttributeError, match="robust_acc"):
        schema.FINAL.robust_acs  # noqa: B018
    with pytest.raises(KeyError, match="final.robust_acc"):
        schema.column("final.robust_acs")


def test_block_columns_are_the_typed_blocks_fields_with_units() -> None:
    for section, block in ((schema.FINAL, Metrics), (schema.BEST, Metrics), (schema.COST, CostRecord)):
        declared = [c.key for c in schema.COLUMNS.values() if c.source == section.name]
        assert declared == [f"{section.name}.{name}" for name in block.known()]
    assert schema.column(schema.COST.energy_kwh).unit == "kWh"
    assert schema.column(schema.COST.train_flops).short == "flops"
    assert schema.column(schema.BEST.robust_acc).short == "best_robust_acc"
    assert schema.column(schema.FINAL.n_params).type is int and schema.column(schema.FINAL.clean_acc).type is float
    assert all(c.description for c in schema.COLUMNS.values())


def test_declared_config_columns_exist_in_the_resolved_config() -> None:
    keys = set(flatten(RunConfig().model_dump(mode="json"), schema.CONFIG_PREFIX))
    missing = [c.key for c in schema.COLUMNS.values() if c.source == "config" and c.key not in keys]
    assert not missing


def _planted_run(runs_dir: Path) -> RunDir:
    rd = RunDir(runs_dir / "r1")
    rd.write_config(RunConfig().model_dump(mode="json"))
    rd.update_record(status="finished", final={"clean_acc": 0.8, "robust_acc": 0.4, "n_params": 10, "llm_key": 1},
                     best={"robust_acc": 0.45}, cost={"train_flops": 1e12, "energy_kwh": 0.5, "energy_source": "fake",
                                                     "constants": {"pue": {"value": 1.58, "source": "x"}}})
    return rd


def test_index_columns_are_declared_or_config_keys_or_block_extras(tmp_path: Path) -> None:
    _planted_run(tmp_path)
    (row,) = load_index(tmp_path)
    loose = [k for k in row if not schema.is_declared(k) and not k.startswith(schema.CONFIG_PREFIX)]
    assert loose == ["final.llm_key"]  # an extra key of the final block (an LLM run's), kept as it came
    assert row[schema.ROBUST_ACC] == 0.4 and row[schema.COST.energy_kwh] == 0.5


def test_runs_list_and_tracking_export_name_their_columns_from_the_schema(tmp_path: Path, monkeypatch) -> None:
    from robustperf.cli.app import app
    from robustperf.tracking.source import read_runs
    from robustperf.tracking.table import runs_frame

    _planted_run(tmp_path)
    renamed = schema.Column(**{**vars(schema.column(schema.CONFIG_MODEL)), "short": "architecture"})
    monkeypatch.setitem(schema._DECLARED, schema.CONFIG_MODEL, renamed)
    listing = CliRunner().invoke(app, ["runs", "list", "--runs-dir", str(tmp_path)], env={"COLUMNS": "300"})
    assert listing.exit_code == 0, listing.output
    assert "architecture" in listing.output and "tiny_cnn" in listing.output
    monkeypatch.setattr(schema, "EVALUATION_FIELDS", ("robust_acc",))
    RunDir(tmp_path / "r1").update_record(evaluations={"aa": {"robust_acc": 0.3, "clean_acc": 0.7}})
    frame = runs_frame(read_runs(tmp_path))
    assert "evaluations/aa/robust_acc" in frame.columns and "evaluations/aa/clean_acc" not in frame.columns
    assert frame.loc[0, "final/robust_acc"] == 0.4 and frame.loc[0, "config.model.name"] == "tiny_cnn"


def test_cli_fit_defaults_are_the_scaling_store_columns() -> None:
    # spelled there, so that `robustperf --help` does not import the store
    from robustperf.cli.fit import _DEFAULTS as defaults
    from robustperf.scaling import STORE_COLUMNS

    expected = {"x": STORE_COLUMNS["flops"], "y": STORE_COLUMNS["robust_acc"], "n": STORE_COLUMNS["n_params"],
                "d": STORE_COLUMNS["samples"], "loss": STORE_COLUMNS["loss"], "fid": STORE_COLUMNS["fid"]}
    assert defaults == expected


def test_block_lookups_build_the_blocks_dict_once(monkeypatch) -> None:
    from robustperf.store.blocks import RecordBlock

    block = Metrics.from_dict({"clean_acc": 0.9, "robust_acc": 0.5, "flag": True})
    calls = []
    known = RecordBlock.known.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(Metrics, "known", classmethod(lambda cls: calls.append(1) or known(cls)))
    for _ in range(100):
        assert block["clean_acc"] == 0.9 and block.get("robust_acc") == 0.5 and "flag" in block and len(block) == 3
    assert len(calls) <= 1  # built on first use, not on every lookup
    out = block.to_dict()
    out["clean_acc"] = 0.0  # a caller's copy: the block is unchanged
    assert block["clean_acc"] == 0.9 and block == {"clean_acc": 0.9, "robust_acc": 0.5, "flag": True}
