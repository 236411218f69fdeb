"""The dependency rules of docs/architecture.md, enforced.

Two kinds of check: every import statement of the package, lazy ones inside functions included, is read
from the source (AST) and checked against the rules; and the packages whose rule is about a heavy or
higher-level package are imported in a fresh interpreter with that package blocked, and used.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "robustperf"


def _imports(path: Path, package: str | None = None) -> set[str]:
    """Every module a file imports (absolute names; relative imports resolved against its package)."""
    if package is None:
        package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from robustperf import training`
    return names


def _violations(files: list[Path], forbidden: str, package: str | None = None) -> list[str]:
    return [f"{f.name} imports {name}" for f in files for name in sorted(_imports(f, package))
            if name == forbidden or name.startswith(forbidden + ".")]


def _files(subpackage: str = "") -> list[Path]:
    root = SRC / subpackage if subpackage else SRC
    return sorted(root.rglob("*.py"))


@pytest.mark.parametrize(
    ("subpackage", "forbidden"),
    [
        ("cost", "robustperf.training"),  # the counter counts the step it is handed
        ("attacks", "robustperf.training"),  # training uses attacks, never the other way round
        ("scaling", "torch"),  # fitting and forecasting work with numpy/scipy/sklearn only
        ("store", "robustperf.training"),  # the run store is below every engine
        ("models", "robustperf.training"),  # loading a trained model needs no training engine
        ("evaluation", "robustperf.training"),
        ("tracking", "robustperf.training"),  # the loop hands the trackers its rows; they never reach back
        ("zoo", "robustperf.training"),  # a zoo model is evaluated and costed without the training engine
    ],
)
def test_subpackage_never_imports(subpackage: str, forbidden: str) -> None:
    assert _violations(_files(subpackage), forbidden) == []


def test_library_never_imports_the_cli() -> None:
    library = [f for f in _files() if "cli" not in f.relative_to(SRC).parts and f.name != "__main__.py"]
    assert _violations(library, "robustperf.cli") == []


def test_the_rules_would_catch_a_lazy_import(tmp_path: Path) -> None:
    """The AST check sees imports inside functions, and relative ones."""
    bad = tmp_path / "probe.py"
    bad.write_text("def f():\n    from ..training import loop\n    import robustperf.training.methods\n"
                   "from robustperf import training\n")
    assert _violations([bad], "robustperf.training", package="robustperf.cost") == [
        "probe.py imports robustperf.training", "probe.py imports robustperf.training.loop",
        "probe.py imports robustperf.training.methods"]


def _run_blocked(blocked: str, code: str) -> subprocess.CompletedProcess[str]:
    prelude = f"import sys; sys.modules[{blocked!r}] = None\n"
    src = str(SRC.parent)
    return subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {src!r})\n" + prelude + code],
                          capture_output=True, text=True, timeout=300)


def test_cost_counts_and_plans_with_training_blocked() -> None:
    code = (
        "import torch\n"
        "from torch import nn\n"
        "import robustperf.cost, robustperf.cost.accounting as acc, robustperf.cost.planning, robustperf.cost.energy\n"
        "from robustperf.config import RunConfig\n"
        "model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))\n"
        "def it(m, x, y, done):\n"
        "    done(); nn.functional.cross_entropy(m(x), y).backward()\n"
        "b = acc.train_flops_per_sample(model, RunConfig(), it, input_shape=(3, 2, 2))\n"
        "print(b.per_sample / b.forward_flops)\n"
    )
    out = _run_blocked("robustperf.training", code)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout) == pytest.approx(2.0)  # forward + weight gradient (the input needs none)


def test_models_evaluation_and_attacks_import_with_training_blocked() -> None:
    code = ("import robustperf.models, robustperf.evaluation, robustperf.attacks, robustperf.store\n"
            "from robustperf.models import load_run_model\n")
    out = _run_blocked("robustperf.training", code)
    assert out.returncode == 0, out.stderr[-2000:]


def test_scaling_imports_with_torch_blocked() -> None:
    code = "\n".join(f"import robustperf.scaling.{f.stem}" for f in _files("scaling") if f.stem != "__init__")
    out = _run_blocked("torch", code)
    assert out.returncode == 0, out.stderr[-2000:]
