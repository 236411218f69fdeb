"""Entry-point plug-ins: a package installed beside robustperf adds a model that trains through `run-one`.

The fixture writes a real (tiny) distribution into a temporary directory: the package and its
``*.dist-info`` with ``entry_points.txt``, the files pip writes on install. Putting that directory on the
path is what installing it does, so `importlib.metadata` finds its entry points in this process and in
the fresh ``python -m robustperf run-one`` process a cluster array task would start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from robustperf.registry import Registry, RegistryError

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(Path(__file__).resolve().parent / "sweep"))
from sweep_targets import TINY  # noqa: E402

PLUGIN_CODE = '''
"""A user's model package: one architecture, one attack-free helper."""
from torch import nn


def build_plugin_mlp(*, num_classes, input_shape, hidden=16):
    c, h, w = input_shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, int(hidden)), nn.ReLU(), nn.Linear(int(hidden), num_classes))
'''

ENTRY_POINTS = """
[robustperf.models]
plugin_mlp = rp_demo_plugin:build_plugin_mlp
broken_net = rp_demo_plugin.missing:build
"""


def write_plugin(root: Path) -> Path:
    """A distribution `rp-demo-plugin` laid out as pip installs it; returns the directory to put on the path."""
    (root / "rp_demo_plugin").mkdir(parents=True)
    (root / "rp_demo_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN_CODE))
    info = root / "rp_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rp-demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return root


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from robustperf.models import MODELS

    saved_items, saved_plugins = dict(MODELS._items), dict(MODELS._plugins)
    root = write_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    yield root
    MODELS._items, MODELS._plugins, MODELS._scanned_path = saved_items, saved_plugins, None
    sys.modules.pop("rp_demo_plugin", None)


def test_plugin_model_is_found_and_built(plugin_path: Path) -> None:
    import torch

    from robustperf.models import MODELS, create_model

    assert "plugin_mlp" in MODELS.names() and "wide_resnet" in MODELS.names()
    model = create_model("plugin_mlp", num_classes=3, input_shape=(1, 4, 4), hidden=5)
    assert model(torch.rand(2, 1, 4, 4)).shape == (2, 3)


def test_a_broken_plugin_is_named_in_one_line_and_spares_the_builtins(plugin_path: Path) -> None:
    from robustperf.models import MODELS, create_model

    with pytest.raises(RegistryError) as err:
        MODELS.get("broken_net")
    message = str(err.value)
    assert "\n" not in message
    assert "'broken_net'" in message and "rp-demo-plugin" in message and "ModuleNotFoundError" in message
    assert "broken_net" in MODELS.plugin_errors() and "broken_net" not in MODELS.names()
    assert create_model("tiny_cnn", num_classes=2, input_shape=(1, 8, 8)) is not None  # built-ins unaffected


def test_a_plugin_cannot_shadow_a_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg: Registry[int] = Registry("widget", group="robustperf.test_widgets")
    reg.register("alpha", 1)
    root = tmp_path / "site"
    info = root / "shadow-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shadow\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[robustperf.test_widgets]\nalpha = json:dumps\nbeta = json:loads\n")
    monkeypatch.syspath_prepend(str(root))
    assert reg.get("alpha") == 1 and reg.get("beta") is json.loads
    assert "built-in" in reg.plugin_errors()["alpha"]


def test_plugin_model_trains_through_run_one_in_a_fresh_process(plugin_path: Path, tmp_path: Path) -> None:
    """The cluster path: a manifest line naming the plug-in's model, trained by `python -m robustperf run-one`."""
    from robustperf.sweep.manifest import write_manifest
    from robustperf.sweep.run import run_one

    config = {**TINY, "name": "plugin", "model": {"name": "plugin_mlp", "kwargs": {"hidden": 6}}}
    (tmp_path / "runs").mkdir()  # run-one wants the manifest inside the runs directory it names
    manifest = write_manifest(tmp_path / "runs" / "manifest.jsonl", run_one, [config], tmp_path / "runs")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), str(SRC)]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "robustperf", "run-one", "--manifest", str(manifest), "--index", "0",
                           "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "finished", summary
    resolved = json.loads((Path(summary["run_dir"]) / "config.json").read_text())
    assert resolved["model"]["name"] == "plugin_mlp"
    result = json.loads((Path(summary["run_dir"]) / "result.json").read_text())
    assert result["final"]["n_params"] == 64 * 6 + 6 + 6 * 10 + 10  # digits: 1x8x8 in, 10 classes
    # and `robustperf evaluate` rebuilds the plug-in's model from the checkpoint in another fresh process
    proc = subprocess.run([sys.executable, "-m", "robustperf", "evaluate", summary["run_dir"], "--attack", "pgd",
                           "--n-examples", "20", "--device", "cpu"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluations = json.loads((Path(summary["run_dir"]) / "result.json").read_text())["evaluations"]
    assert [e["n_examples"] for e in evaluations.values()] == [20]
