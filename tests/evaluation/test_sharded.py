"""Sharded evaluation: ranks that split the cascade's batches end with exactly one process's verdicts.

Two ranks run here as two threads that exchange through a barrier (the same `Shard` interface a process
group provides: `robustperf.attacks.sharding.process_group_shard`); the CLI test runs real gloo processes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from robustperf.attacks.sharding import Shard
from robustperf.evaluation import evaluate

ATTACKS = ("apgd-ce", "apgd-t", "square")
PARAMS = {"apgd-ce": {"n_iter": 20}, "apgd-t": {"n_iter": 10, "n_target_classes": 2}, "square": {"n_queries": 50}}


def thread_shards(world: int) -> list[Shard]:
    """`world` shards whose exchange is an all-gather between threads."""
    slots: list[Any] = [None] * world
    barrier = threading.Barrier(world)

    def make(rank: int) -> Shard:
        def exchange(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
            slots[rank] = items
            barrier.wait()
            merged = [item for part in slots for item in part]
            barrier.wait()  # nobody overwrites a slot before everyone has read them
            return merged

        return Shard(rank, world, exchange)

    return [make(r) for r in range(world)]


def run_sharded(world: int, model, x, y, state_dir: Path | None = None, **kw: Any) -> list[Any]:
    results: list[Any] = [None] * world
    errors: list[BaseException] = []

    def work(shard: Shard) -> None:
        try:
            results[shard.rank] = evaluate(model, x, y, shard=shard, out_dir=state_dir, save_outputs=False, **kw)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in thread_shards(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_cascade_equals_one_process(digits_mlp, world: int) -> None:
    model, x, y = digits_mlp
    x, y = x[:120], y[:120]
    kw = {"attack": ATTACKS, "attack_params": PARAMS, "eps": 0.1, "batch_size": 16, "sanity_checks": False}
    one = evaluate(model, x, y, **kw)
    assert 0 < one.robust_acc < one.clean_acc  # the attacks fool some points, so the merge matters
    for res in run_sharded(world, model, x, y, **kw):
        assert torch.equal(res.robust_flags, one.robust_flags) and torch.equal(res.clean_flags, one.clean_flags)
        assert torch.equal(res.x_adv, one.x_adv) and torch.equal(res.y_adv, one.y_adv)
        assert {k: v["n_fooled"] for k, v in res.per_attack.items()} == {k: v["n_fooled"] for k, v in one.per_attack.items()}


def test_a_sharded_evaluation_resumes_with_another_number_of_ranks(digits_mlp, tmp_path: Path) -> None:
    model, x, y = digits_mlp
    x, y = x[:96], y[:96]
    kw = {"attack": ("apgd-ce", "square"), "attack_params": {k: PARAMS[k] for k in ("apgd-ce", "square")},
          "eps": 0.1, "batch_size": 16,
          "sanity_checks": False}
    one = evaluate(model, x, y, **kw)
    shard = thread_shards(2)[0]  # rank 0 of 2 alone: its batches of the first stage, then the exchange fails

    class Stop(Exception):
        pass

    def no_peer(items: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        raise Stop

    with pytest.raises(Stop):
        evaluate(model, x, y, shard=Shard(shard.rank, 2, no_peer), out_dir=tmp_path, save_outputs=False, **kw)
    assert (tmp_path / "state" / "autoattack_state.rank0.json").is_file()
    for res in run_sharded(3, model, x, y, state_dir=tmp_path, **kw):  # 3 ranks pick up rank 0's batches
        assert torch.equal(res.robust_flags, one.robust_flags) and torch.equal(res.x_adv, one.x_adv)
