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
    console.print(f"per-run rounds: {long_path}\nASR vs round: {table_path}")
    if execution.n_failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(llm_app, name="llm")
