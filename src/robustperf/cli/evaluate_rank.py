"""One rank of `robustperf evaluate --nproc N` (started by `robustperf.cli.evaluate_shards.launch`).

Apart from the launcher so that the command module and the launcher import each other in one direction only.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from robustperf.cli.evaluate_shards import RESULT_ENV


def main(payload: str) -> None:
    """One rank: join the group, evaluate its share; rank 0 stores the result and names its file in $RESULT_ENV."""
    import torch
    import torch.distributed as dist

    from robustperf.attacks.sharding import process_group_shard
    from robustperf.cli.evaluate import _evaluate

    args = json.loads(payload)
    args[0] = Path(args[0])
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cuda = args[8] != "cpu" and torch.cuda.is_available() and torch.cuda.device_count() >= world
    if cuda:
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    try:
        if not cuda and args[8] == "auto":
            args[8] = "cpu"  # fewer GPUs than processes: all on the CPU
        _, json_path = _evaluate(*args, shard=process_group_shard())  # type: ignore[misc]  # args: the 11 CLI values
        if rank == 0:
            Path(os.environ[RESULT_ENV]).write_text(str(json_path))  # read back by `launch`
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
