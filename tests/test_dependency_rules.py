"""The layer order of docs/architecture.md, enforced; and no circle of files.

Every import statement of the package is read from the source (AST): at module level, inside functions,
under ``if TYPE_CHECKING``, relative ones resolved. Two rules are checked on that graph:

- **the layer order** (`LAYERS`, lowest first): a module may import its own package and the packages of
  lower layers, never a package of a higher layer, and never another package of its own layer;
- **no circle of files**: the file-level import graph has no strongly connected component of two or more
  files (imports inside functions included, so a lazy import cannot hide one).

Only static imports are seen: the two ``importlib.import_module`` calls (the CLI discovering its command
modules, a study manifest resolving a registered entry point) name modules at run time.

Print the package graph, the circles (of packages and of files) and the violations with::

    python tests/test_dependency_rules.py [PACKAGE_DIR]      # default: this checkout's src/robustperf

Packages whose rule is about a heavy third-party package are also imported in a fresh interpreter with
that package blocked, and used.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "robustperf"

# The layer order, lowest first. A package is a subpackage (``store``) or a top-level module (``config``);
# ``robustperf`` is the root ``__init__`` (``__version__`` and lazy names: it imports nothing when loaded).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("robustperf", "registry", "device", "names", "early_signals", "bounded_yaml", "threat"),  # no robustperf imports at all
    ("config",),  # the run config (pydantic): every knob and its default
    ("store",),  # run directories, records, the session, the index: knows configs as mappings only
    ("data", "models", "tracking"),  # data sets; model zoo and loading a trained run's model; trackers
    ("attacks",),  # PGD, APGD, FAB, Square, AutoAttack
    ("cost",),  # FLOPs, energy meters, conversions, inference benchmark, planning
    ("training", "evaluation"),  # the training loop and its methods; evaluating a trained model
    ("scaling", "zoo"),  # fits, laws, forecasts (numpy/scipy/sklearn only); RobustBench models evaluated and priced
    ("sweep",),  # designs, studies, executors
    ("llm", "human"),  # the LLM pipeline; the human-alignment study
    ("report",),  # tables, figures, the HTML report
    ("cli",),  # the command line: one thin module per command group
    ("__main__",),  # `python -m robustperf`
)

# Packages of one layer are independent; an exception would be listed here as (importer, imported).
SIDEWAYS_ALLOWED: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` (a module) imports ``target`` (the deepest module of the name) at ``line``."""

    source: str
    target: str
    line: int
    lazy: bool  # inside a function or class body


@dataclass
class Graph:
    """The import graph of a source tree: modules (dotted name -> file) and their imports."""

    root: Path  # the package directory
    modules: dict[str, Path]
    edges: list[Edge] = field(default_factory=list)

    def where(self, module: str) -> str:
        """A module's file, relative to the package directory (``store/session.py``)."""
        return self.modules[module].relative_to(self.root).as_posix()

    def targets(self, module: str) -> set[str]:
        return {e.target for e in self.edges if e.source == module}


def module_name(path: Path, root: Path) -> str:
    """``robustperf.store.session`` for ``<root>/store/session.py``; a package's ``__init__`` is the package."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """The layer unit of a module: its subpackage or top-level module (``store``, ``config``, ``robustperf``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imported_names(tree: ast.Module, package: str) -> list[tuple[str, int, bool]]:
    """(dotted name, line, lazy) of every import in ``tree``; ``from a import b`` yields ``a.b``."""
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((alias.name, child.lineno, lazy) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                out.extend((f"{base}.{alias.name}", child.lineno, lazy) for alias in child.names)
            visit(child, inner)

    visit(tree, False)
    return out


def build_graph(root: Path = SRC) -> Graph:
    """Parse every ``.py`` file under ``root`` (the package directory) into the import graph of its modules."""
    files = sorted(root.rglob("*.py"))
    graph = Graph(root, {module_name(f, root): f for f in files})
    seen: set[Edge] = set()
    for module, path in graph.modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for name, line, lazy in _imported_names(ast.parse(path.read_text(), str(path)), package):
            if name.split(".")[0] != root.name:
                continue
            target = name
            while target not in graph.modules:  # `from robustperf.store import RunSession` -> robustperf.store
                target = target.rpartition(".")[0]
            edge = Edge(module, target, line, lazy)
            if target != module and edge not in seen:  # `from a import b, c` is one import of a
                seen.add(edge)
                graph.edges.append(edge)
    return graph


def layer_index(layers: tuple[tuple[str, ...], ...] = LAYERS) -> dict[str, int]:
    return {package: i for i, layer in enumerate(layers) for package in layer}


def layer_violations(graph: Graph, layers: tuple[tuple[str, ...], ...] = LAYERS,
                     sideways: frozenset[tuple[str, str]] = SIDEWAYS_ALLOWED) -> list[str]:
    """``file:line imports target (why)`` for every import against the layer order; also unplaced packages."""
    rank = layer_index(layers)
    unplaced = sorted({package_of(m) for m in graph.modules} - set(rank))
    out = [f"package {p!r} is in no layer: add it to LAYERS" for p in unplaced]
    for e in sorted(graph.edges, key=lambda e: (e.source, e.line, e.target)):
        a, b = package_of(e.source), package_of(e.target)
        if a == b or a not in rank or b not in rank or (a, b) in sideways:
            continue
        if rank[b] > rank[a]:
            why = "upward"
        elif rank[b] == rank[a]:
            why = "sideways, same layer"
        else:
            continue
        lazy = ", inside a function" if e.lazy else ""
        out.append(f"{graph.where(e.source)}:{e.line} imports {e.target} ({why}: {a} -> {b}{lazy})")
    return out


def file_cycles(graph: Graph) -> list[list[str]]:
    """The circles of files: strongly connected components with two or more modules (Tarjan, iterative)."""
    succ: dict[str, list[str]] = defaultdict(list)
    for e in graph.edges:
        succ[e.source].append(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(set(succ[start]))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(set(succ[child])))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return sorted(out)


def package_graph(graph: Graph) -> dict[str, dict[str, int]]:
    """package -> {imported package: number of file-level imports}, own package left out."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in graph.edges:
        a, b = package_of(e.source), package_of(e.target)
        if a != b:
            out[a][b] += 1
    return {a: dict(sorted(bs.items())) for a, bs in sorted(out.items())}


def package_cycles(graph: Graph) -> list[list[str]]:
    """The circles of packages (what a lazy import inside a function hides from a look at the top of files)."""
    packages = {package_of(m) for m in graph.modules}
    edges = [Edge(a, b, 0, False) for a, bs in package_graph(graph).items() for b in bs]
    return file_cycles(Graph(graph.root, {p: graph.root for p in packages}, edges))


def report(graph: Graph) -> str:
    """The layer order, the package graph, the file circles and the violations, as text."""
    lines = ["layer order (lowest first):"]
    lines += [f"  {i:2d}  {', '.join(layer)}" for i, layer in enumerate(LAYERS)]
    lines.append(f"package graph ({len(graph.modules)} files, {len(graph.edges)} imports):")
    lines += [f"  {a} -> " + ", ".join(f"{b} ({n})" for b, n in bs.items()) for a, bs in package_graph(graph).items()]
    circles = package_cycles(graph)
    lines.append(f"circles of packages: {len(circles)}")
    lines += [f"  {' <-> '.join(c)}" for c in circles]
    cycles = file_cycles(graph)
    lines.append(f"circles of files: {len(cycles)}")
    lines += [f"  {' <-> '.join(c)}" for c in cycles]
    bad = layer_violations(graph)
    lines.append(f"imports against the layer order: {len(bad)}")
    lines += [f"  {v}" for v in bad]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- the tests


def test_no_import_goes_against_the_layer_order() -> None:
    assert layer_violations(build_graph()) == []


def test_no_circle_of_files() -> None:
    assert file_cycles(build_graph()) == []


def test_no_circle_of_packages() -> None:
    assert package_cycles(build_graph()) == []


def test_every_package_is_in_exactly_one_layer() -> None:
    placed = [p for layer in LAYERS for p in layer]
    assert len(placed) == len(set(placed))
    assert {package_of(m) for m in build_graph().modules} == set(placed)


def test_docs_show_the_layer_order() -> None:
    """docs/architecture.md draws the same order (one line per layer, lowest first)."""
    text = (SRC.parents[1] / "docs" / "architecture.md").read_text()
    for layer in LAYERS:
        assert ", ".join(layer) in text, f"docs/architecture.md lacks the layer line {', '.join(layer)!r}"


def _planted_copy(tmp_path: Path, file: str, code: str) -> Graph:
    root = tmp_path / "robustperf"
    shutil.copytree(SRC, root, ignore=shutil.ignore_patterns("__pycache__"))
    target = root / file
    target.write_text(target.read_text() + code)
    return build_graph(root)


def test_the_checker_fails_on_a_planted_upward_import(tmp_path: Path) -> None:
    graph = _planted_copy(tmp_path, "store/record.py", "\nfrom robustperf.training import loop\n")
    bad = layer_violations(graph)
    assert len(bad) == 1 and bad[0].startswith("store/record.py:")
    assert "imports robustperf.training.loop (upward: store -> training)" in bad[0]


def test_the_checker_fails_on_a_planted_import_inside_a_function(tmp_path: Path) -> None:
    code = "\n\ndef _probe():\n    from ..sweep import study\n    return study\n"
    graph = _planted_copy(tmp_path, "attacks/pgd.py", code)
    assert [v.split(":", 1)[0] for v in layer_violations(graph)] == ["attacks/pgd.py"]
    assert "imports robustperf.sweep.study (upward: attacks -> sweep, inside a function)" in layer_violations(graph)[0]


def test_the_checker_fails_on_a_planted_circle_of_files(tmp_path: Path) -> None:
    """A lazy import back within one package is no layer violation, but it closes a circle."""
    graph = _planted_copy(tmp_path, "store/io.py", "\n\ndef _probe():\n    from robustperf.store import session\n")
    assert layer_violations(graph) == []
    assert any({"robustperf.store.io", "robustperf.store.session"} <= set(c) for c in file_cycles(graph))


def test_sideways_imports_within_a_layer_are_caught() -> None:
    graph = Graph(SRC, {"robustperf.training.loop": SRC / "training" / "loop.py",
                   "robustperf.evaluation.evaluate": SRC / "evaluation" / "evaluate.py"},
                  [Edge("robustperf.evaluation.evaluate", "robustperf.training.loop", 3, lazy=True)])
    assert layer_violations(graph) == [
        "evaluation/evaluate.py:3 imports robustperf.training.loop "
        "(sideways, same layer: evaluation -> training, inside a function)"]


def test_scaling_never_imports_torch() -> None:
    """Fitting and forecasting work with numpy/scipy/sklearn only."""
    for path in sorted((SRC / "scaling").rglob("*.py")):
        names = {n.split(".")[0] for n, _, _ in _imported_names(ast.parse(path.read_text()), "robustperf.scaling")}
        assert "torch" not in names, path


def _run_blocked(blocked: str, code: str) -> subprocess.CompletedProcess[str]:
    # A meta-path finder that refuses the package, as an environment without it would: a None in
    # sys.modules instead breaks libraries that probe sys.modules for it (scipy.stats looks up "torch").
    prelude = (
        "import importlib.abc\n"
        "class _Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {blocked!r} or name.startswith({blocked!r} + '.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r} (blocked)', name=name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    src = str(SRC.parent)
    return subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {src!r})\n" + prelude + code],
                          capture_output=True, text=True, timeout=300)


def test_cost_counts_and_plans_with_training_blocked() -> None:
    import pytest

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
    code = "\n".join(f"import robustperf.scaling.{f.stem}" for f in sorted((SRC / "scaling").glob("*.py"))
                     if f.stem != "__init__")
    out = _run_blocked("torch", code)
    assert out.returncode == 0, out.stderr[-2000:]


if __name__ == "__main__":
    # python tests/test_dependency_rules.py [PACKAGE_DIR]: another tree, e.g. an older checkout's src/robustperf
    print(report(build_graph(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else SRC)))
