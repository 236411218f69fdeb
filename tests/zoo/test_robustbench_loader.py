"""RobustBench's own code on our files: its `load_model` reads the checkpoint robustperf loads (same logits),
and its `list_available_models` reads the model_info JSON robustperf writes.

robustbench 1.1.1 does not import in this environment as shipped: it imports ``pkg_resources`` (removed in
setuptools 81) and ``autoattack`` (pyautoattack 0.2.0, which it requires, installs ``pyautoattack``). A
fresh interpreter gets two shims for exactly those (a `resource_filename` over importlib.resources, and the
module alias), so this process's modules stay untouched; everything else is RobustBench's code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from zoo_helpers import robustbench_file

from robustperf.zoo import CostFields, load_zoo_model, model_info, write_model_info
from robustperf.zoo.load import checkpoint_path

SRC = Path(__file__).resolve().parents[2] / "src"

SHIMS = """
import sys, types
shim = types.ModuleType("pkg_resources")
def resource_filename(package, path):
    import importlib.resources
    return str(importlib.resources.files(package).joinpath(path))
shim.resource_filename = resource_filename
sys.modules["pkg_resources"] = shim
import pyautoattack
sys.modules["autoattack"] = pyautoattack
"""

SCRIPT = """
import contextlib, io, json, os, sys
import torch
from robustbench.utils import list_available_models, load_model
model_dir, workdir, x_path, out_path = sys.argv[1:5]
model = load_model("Carmon2019Unlabeled", model_dir=model_dir, dataset="cifar10", threat_model="Linf")
with torch.no_grad():
    logits = model(torch.load(x_path))
from robustperf.zoo import load_zoo_model
via_robustperf = load_zoo_model("Carmon2019Unlabeled", model_dir=model_dir, loader="robustbench")
with torch.no_grad():
    same = torch.equal(via_robustperf(torch.load(x_path)), logits)
os.chdir(workdir)  # list_available_models reads ./model_info/<dataset>/<threat_model>/*.json
table = io.StringIO()
with contextlib.redirect_stdout(table):
    list_available_models("cifar10", "Linf")
torch.save({"logits": logits, "table": table.getvalue(), "robustperf_loader_same": same}, out_path)
"""


@pytest.fixture
def rb_python(tmp_path: Path) -> list[str]:
    if robustbench_file("utils.py") is None:
        pytest.skip("robustbench is not installed (pip install --no-deps robustbench)")
    pytest.importorskip("pyautoattack", reason="robustbench needs pyautoattack")
    script = tmp_path / "rb_script.py"
    script.write_text(textwrap.dedent(SHIMS) + textwrap.dedent(SCRIPT))
    return [sys.executable, str(script)]


def test_robustbench_reads_our_checkpoint_and_our_json(rb_python: list[str], rb_wide_resnet, tmp_path: Path) -> None:
    torch.manual_seed(0)
    rb = rb_wide_resnet.WideResNet(depth=28, widen_factor=10, sub_block1=True).eval()
    path = checkpoint_path(tmp_path / "models", "Carmon2019Unlabeled", "cifar10", "Linf")
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in rb.state_dict().items()}}, path)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    torch.save(x, tmp_path / "x.pt")
    ours = load_zoo_model("Carmon2019Unlabeled", model_dir=tmp_path / "models", loader="robustperf")
    info = model_info(name="Carmon2019Unlabeled", dataset="cifar10", architecture="WideResNet-28-10", eps=8 / 255,
                      clean_acc=0.8975, robust_acc=0.5953,
                      cost=CostFields(36_479_194, 1.049e10, {"flops": 1.0e15, "n_examples": 10_000}, "test machine"))
    write_model_info(tmp_path / "work" / "model_info", "cifar10", "Linf", "Carmon2019Unlabeled", info)
    env = {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([*rb_python, str(tmp_path / "models"), str(tmp_path / "work"), str(tmp_path / "x.pt"),
                           str(tmp_path / "out.pt")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = torch.load(tmp_path / "out.pt")
    with torch.no_grad():
        torch.testing.assert_close(ours(x), out["logits"], rtol=1e-4, atol=1e-4)
    assert out["robustperf_loader_same"]  # robustperf's loader="robustbench" is RobustBench's load_model
    row = next(line for line in out["table"].splitlines() if "Carmon2019Unlabeled" in line)
    assert "89.75%" in row and "59.53%" in row and "WideResNet-28-10" in row
    assert json.loads((tmp_path / "work" / "model_info" / "cifar10" / "Linf" / "Carmon2019Unlabeled.json")
                      .read_text())["cost"]["n_params"] == 36_479_194
