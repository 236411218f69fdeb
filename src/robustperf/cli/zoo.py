"""`robustperf zoo list|evaluate|cost`: RobustBench zoo models by name, evaluated and priced."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from robustperf.cli.common import console, fail, user_errors

zoo_app = typer.Typer(help="RobustBench zoo models: list, evaluate with AutoAttack and price, cost.",
                      no_args_is_help=True)

MODEL_DIR = typer.Option(Path("models"), "--model-dir", help="RobustBench model_dir: <dir>/<dataset>/<threat>/<name>.pt")
DATASET = typer.Option("cifar10", "--dataset", help="cifar10 | cifar100 | imagenet")
THREAT = typer.Option("Linf", "--threat-model", help="Linf | L2 | corruptions")


@zoo_app.command("list")
def list_cmd(model_dir: Path = MODEL_DIR, dataset: str | None = typer.Option(None, "--dataset"),
             threat_model: str | None = typer.Option(None, "--threat-model")) -> None:
    """The zoo models robustperf builds itself, and whether their checkpoint is in --model-dir."""
    from robustperf.zoo import ZOO, checkpoint_path

    table = Table("name", "dataset", "threat_model", "architecture", "eps", "checkpoint")
    for key in ZOO.names():
        e = ZOO.get(key)
        if (dataset and e.dataset != dataset) or (threat_model and e.threat_model != threat_model):
            continue
        present = checkpoint_path(model_dir, e.name, e.dataset, e.threat_model).is_file()
        table.add_row(e.name, e.dataset, e.threat_model, e.architecture, f"{e.eps:.4g}" if e.eps else "",
                      "present" if present else "missing")
    console.print(table)


@zoo_app.command("evaluate")
def evaluate_cmd(
    name: str = typer.Argument(..., help="RobustBench model name, e.g. Carmon2019Unlabeled"),
    model_dir: Path = MODEL_DIR, dataset: str = DATASET, threat_model: str = THREAT,
    data_root: Path = typer.Option(..., "--data-root", help="folder holding cifar-10-batches-py/ (python format)"),
    n_examples: int = typer.Option(10_000, "--n-examples", min=1, help="first N test points (RobustBench: 10000)"),
    eps: float | None = typer.Option(None, "--eps", help="radius (default: the leaderboard's, 8/255 Linf, 0.5 L2)"),
    version: str = typer.Option("standard", "--version", help="AutoAttack version"),
    set_attack: list[str] = typer.Option([], "--set-attack", help="a stage's setting, e.g. square.n_queries=1000 "
                                         "(repeatable; the JSON records the evaluation as run)"),
    batch_size: int = typer.Option(500, "--batch-size", min=1),
    device: str | None = typer.Option(None, "--device"),
    download: bool = typer.Option(False, "--download", help="fetch a missing checkpoint (needs a network)"),
    loader: str = typer.Option("auto", "--loader", help="auto | robustperf | robustbench"),
    energy_meter: str = typer.Option("auto", "--energy-meter", help="auto | nvml | rapl | estimate | none ..."),
    watts: float | None = typer.Option(None, "--watts", help="stated mean power when nothing can be metered"),
    out: Path = typer.Option(Path("model_info"), "--out", help="model_info root: <out>/<dataset>/<threat>/<name>.json"),
    paper_name: str = typer.Option("", "--paper-name"), link: str = typer.Option("", "--link"),
    authors: str = typer.Option("", "--authors"), venue: str = typer.Option("", "--venue"),
    additional_data: bool = typer.Option(False, "--additional-data"),
) -> None:
    """Load NAME from --model-dir, run AutoAttack on the first N test points, count and price it, write model_info."""
    from robustperf.config import CostConfig
    from robustperf.store.record import describe_machine
    from robustperf.zoo import CostFields, Paper, evaluate_with_cost, find_entry, load_zoo_model, model_info
    from robustperf.zoo.data import leaderboard_points
    from robustperf.zoo.model_info import write_model_info

    if loader not in ("auto", "robustperf", "robustbench"):
        fail(f"--loader must be auto, robustperf or robustbench, not {loader!r}")
    with user_errors():
        attack_params = parse_stage_settings(set_attack)
        radius = eps if eps is not None else _default_eps(name, dataset, threat_model)
        model = load_zoo_model(name, model_dir, dataset, threat_model, download=download, loader=loader)  # type: ignore[arg-type]
        x, y = leaderboard_points(dataset, data_root, n_examples)
        priced = evaluate_with_cost(model, x, y, eps=radius, norm=threat_model.lower(), version=version,
                                    batch_size=batch_size, device=device, attack_params=attack_params,
                                    cost_cfg=CostConfig(energy_meter=energy_meter, watts=watts))
        try:
            architecture = find_entry(name, dataset, threat_model).architecture
        except KeyError:
            architecture = type(model).__name__
        info = model_info(name=name, dataset=dataset, architecture=architecture, eps=radius,
                          clean_acc=priced.result.clean_acc, robust_acc=priced.result.robust_acc,
                          cost=CostFields(priced.n_params, priced.forward_flops_per_image, priced.eval,
                                          describe_machine()),
                          paper=Paper(paper_name, link, authors, venue, additional_data))
        path = write_model_info(out, dataset, threat_model, name, info)
    r = priced.result
    console.print(f"{name}: clean {r.clean_acc:.2%}, AutoAttack {r.robust_acc:.2%} on {r.n_examples} points; "
                  f"{priced.eval['flops']:.4g} FLOPs, {priced.eval['seconds']:.1f} s, "
                  f"{_fmt(priced.eval['energy_kwh'])} kWh, {_fmt(priced.eval['usd'])} USD -> {path}")


def parse_stage_settings(items: list[str]) -> dict[str, dict[str, object]]:
    """["square.n_queries=1000", ...] -> {"square": {"n_queries": 1000}} (values read as YAML)."""
    import yaml

    out: dict[str, dict[str, object]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        stage, dot, setting = key.strip().partition(".")
        if not sep or not dot or not stage or not setting:
            raise ValueError(f"--set-attack {item!r} must look like STAGE.SETTING=VALUE, e.g. square.n_queries=1000")
        out.setdefault(stage, {})[setting] = yaml.safe_load(raw)
    return out


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _default_eps(name: str, dataset: str, threat_model: str) -> float:
    from robustperf.zoo import find_entry

    try:
        eps = find_entry(name, dataset, threat_model).eps
    except KeyError:
        eps = None
    if eps is None:
        if threat_model in ("Linf", "L2"):
            return 8 / 255 if threat_model == "Linf" else 0.5
        raise ValueError(f"no default radius for {threat_model}: pass --eps")
    return eps


@zoo_app.command("cost")
def cost_cmd(name: str = typer.Argument(...), dataset: str = DATASET, threat_model: str = THREAT,
             n_examples: int = typer.Option(10_000, "--n-examples", min=1)) -> None:
    """Parameters and forward FLOPs per image of NAME (no checkpoint needed), and AutoAttack's FLOPs bound."""
    from robustperf.cost.analytic import autoattack_equivalents_upper
    from robustperf.zoo import find_entry, static_cost
    from robustperf.zoo.load import build_architecture

    with user_errors():
        entry = find_entry(name, dataset, threat_model)
        n_params, fwd = static_cost(build_architecture(entry))
    bound = fwd * autoattack_equivalents_upper(1.0) * n_examples
    table = Table("quantity", "value")
    for label, value in (("architecture", entry.architecture), ("parameters", f"{n_params:,}"),
                         ("forward FLOPs per image", f"{fwd:.4g}"),
                         (f"AutoAttack standard FLOPs, {n_examples} points, all robust (upper bound)", f"{bound:.4g}")):
        table.add_row(label, value)
    console.print(table)


@zoo_app.command("table")
def table_cmd(root: Path = typer.Argument(Path("model_info"), help="model_info root (<root>/<dataset>/<threat>/*.json)"),
              out: Path = typer.Option(..., "--out", help="CSV to write (RobustBench leaderboard columns)")) -> None:
    """model_info JSONs as one CSV that `robustperf trends` and `robustperf report --overlay` read."""
    from robustperf.store.io import write_text_atomic
    from robustperf.zoo.table import model_info_table

    with user_errors():
        frame = model_info_table(root)
        write_text_atomic(out, frame.to_csv(index=False))
    console.print(f"{len(frame)} models -> {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")
