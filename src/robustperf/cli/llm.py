"""`robustperf llm finetune|attack|advtrain|study CONFIG`: LLM-robustness runs (papers/000)."""

from __future__ import annotations

from pathlib import Path

import typer

from robustperf.cli.common import console, user_errors

llm_app = typer.Typer(help="LLM classifiers: fine-tuning, GCG / RandomToken attacks, adversarial training.",
                      no_args_is_help=True)

CONFIG = typer.Argument(..., help="LLM config YAML (see configs/llm_*.yaml)")
SET = typer.Option(None, "--set", help="override, e.g. --set attack.params.n_iterations=30 (repeatable)")
RUNS_DIR = typer.Option(Path("runs"), "--runs-dir", help="directory holding one folder per run")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _run(command: str, config: Path, overrides: list[str] | None, runs_dir: Path) -> None:
    from robustperf.llm import pipeline
    from robustperf.llm.config import load_llm_config

    fn = {"finetune": pipeline.run_finetune, "attack": pipeline.run_attack, "advtrain": pipeline.run_advtrain}[command]
    from robustperf.llm.metrics import min_median_max

    with user_errors():
        cfg = load_llm_config(config, overrides or [])
        finals = []
        for single in cfg.per_seed():
            rd = fn(single, runs_dir)
            final = pipeline.final_metrics(rd)
            finals.append(final)
            keys = ("clean_acc", "asr", "n_correct", "n_flipped", "asr_by_round", "n_params")
            shown = ", ".join(f"{k}={_fmt(final[k])}" for k in keys if k in final)
            console.print(f"[bold]{rd.run_id}[/] seed {single.seed}: {shown}")
    if len(finals) > 1:
        for key in ("clean_acc", "asr"):
            agg = min_median_max([f.get(key) for f in finals])
            if agg["n"] == 0:
                continue
            console.print(f"{key} over {agg['n']} seeds: min {_fmt(agg['min'])}, median {_fmt(agg['median'])}, "
                          f"max {_fmt(agg['max'])}")


@llm_app.command("finetune")
def finetune_cmd(config: Path = CONFIG, overrides: list[str] = SET, runs_dir: Path = RUNS_DIR) -> None:
    """Fine-tune the classifier on the clean task (one run per seed)."""
    _run("finetune", config, overrides, runs_dir)


@llm_app.command("attack")
def attack_cmd(config: Path = CONFIG, overrides: list[str] = SET, runs_dir: Path = RUNS_DIR) -> None:
    """Attack the fine-tuned classifier on validation examples; report the attack success rate."""
    _run("attack", config, overrides, runs_dir)


@llm_app.command("advtrain")
def advtrain_cmd(config: Path = CONFIG, overrides: list[str] = SET, runs_dir: Path = RUNS_DIR) -> None:
    """Iterative adversarial training; ASR on attacked validation examples per round."""
    _run("advtrain", config, overrides, runs_dir)


@llm_app.command("study")
def study_cmd(config: Path = CONFIG, overrides: list[str] = SET, runs_dir: Path = RUNS_DIR) -> None:
    """Run a grid of adversarial-training runs and write the ASR-vs-round CSV (min/median/max over seeds)."""
    from robustperf.llm.study import load_study, run_study

    with user_errors():
        study = load_study(config, overrides or [])
        long_path, table_path, execution = run_study(study, runs_dir)
    for r in execution.results:
        console.print(f"{r.get('run_id')}: {r.get('status')}" + (f" ({r['failure_reason']})" if r.get("failure_reason")
                                                                   else ""))
    console.print(f"per-run rounds: {long_path}\nASR vs round: {table_path}\n"
                  f"trends: {table_path.parent / (study.name + '_trends.md')}")
    _study_figures(long_path, table_path.parent, study.name)
    if execution.n_failed:
        raise typer.Exit(1)


def _study_figures(rounds_csv: Path, out_dir: Path, name: str) -> None:
    """ASR vs round and ASR vs size (papers/000 Figs. 1-2) next to the CSVs; a figure that cannot be drawn
    says why instead."""
    import pandas as pd

    from robustperf.report import papers
    from robustperf.report.papers import NoFigure
    from robustperf.report.zoo import save_figure

    frame = pd.read_csv(rounds_csv) if rounds_csv.stat().st_size else pd.DataFrame()
    for kind, draw in (("asr_vs_round", papers.asr_vs_round), ("asr_vs_size", papers.asr_vs_model_size)):
        path = out_dir / f"{name}_{kind}.png"
        try:
            save_figure(draw(frame), path)
            console.print(f"figure: {path}")
        except NoFigure as exc:
            console.print(f"figure {kind} not drawn: {exc}")


@llm_app.command("pretrain")
def pretrain_cmd(config: Path = typer.Argument(..., help="pretraining YAML (see configs/llm_pretrain.yaml)"),
                 overrides: list[str] = SET,
                 out: Path = typer.Option(Path("runs/pretrain"), "--out", help="one folder per size")) -> None:
    """Mini Pythia suite: pretrain GPT-NeoX sizes on a local corpus, Hugging Face checkpoints along the way."""
    from robustperf.llm.pretrain import load_pretrain_config, pretrain_suite

    with user_errors():
        cfg = load_pretrain_config(config, overrides or [])
        for r in pretrain_suite(cfg, out):
            console.print(f"[bold]{r.size}[/]: {r.n_params} params, {r.n_tokens} tokens, loss {r.final_loss:.3f}, "
                          f"{r.seconds:.0f} s; fine-tune from model.source=local model.path={r.checkpoints[r.n_steps]}")


@llm_app.command("offense-defense")
def offense_defense_cmd(runs_dir: Path = RUNS_DIR,
                        target_asr: float = typer.Option(0.5, "--target-asr", help="ASR the attacker must reach"),
                        figure: Path | None = typer.Option(None, "--figure", help="write the figure (.png/.svg)"),
                        curves: Path | None = typer.Option(None, "--curves",
                                                           help="write ASR vs attack steps at round 0 per run")) -> None:
    """Attack FLOPs to reach an ASR vs defence FLOPs and model size, over the advtrain runs (papers/000 Sec. 6)."""
    from robustperf.llm.offense_defense import (
        collect_curves,
        collect_points,
        fit_by_attack,
        plot_asr_vs_steps,
        plot_offense_defense,
    )

    with user_errors():
        if not 0 < target_asr <= 1:
            raise ValueError("--target-asr must be in (0, 1]")
        points = collect_points(runs_dir, target_asr=target_asr)
        if not points:
            raise ValueError(f"no advtrain runs with per-prompt success steps under {runs_dir}; run "
                             "`robustperf llm advtrain` or `llm study` first")
        for p in points:
            console.print(f"{p.run_id} round {p.round} ({p.attack}): params {p.n_params}, defence "
                          f"{p.defense_flops:.3g} FLOPs, attack to ASR {target_asr:g}: {_fmt(p.attack_flops)} FLOPs/prompt")
        fits = fit_by_attack(points)
        for attack, fit in fits.items():
            ci = {k: f"[{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in fit.intervals.items()}
            console.print(f"fit {attack or '(attack not recorded)'} ({fit.status}, {fit.n_points} points): log10 attack = "
                          f"{fit.intercept:.3g} + {fit.defense_slope:.3g} {ci.get('defense_slope', '')} log10 defence + "
                          f"{fit.size_slope:.3g} {ci.get('size_slope', '')} log10 params, R2 {fit.r2:.3g}")
        if figure is not None:
            for attack, fit in fits.items():
                path = figure if len(fits) == 1 else figure.with_name(f"{figure.stem}_{attack}{figure.suffix}")
                fig = plot_offense_defense([p for p in points if p.attack == attack], fit, target_asr=target_asr)
                fig.savefig(path)
                console.print(f"figure: {path}")
        if curves is not None:
            plot_asr_vs_steps(collect_curves(runs_dir)).savefig(curves)
            console.print(f"ASR vs attack steps: {curves}")


def register(app: typer.Typer) -> None:
    app.add_typer(llm_app, name="llm")
