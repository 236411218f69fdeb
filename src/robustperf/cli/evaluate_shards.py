"""`robustperf evaluate --nproc N`: N processes split the attack batches of one evaluation.

The command starts N copies of `robustperf.cli.evaluate_rank` (``python -m robustperf.cli.evaluate_rank``) with torchrun's
variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); they join one process
group (gloo on CPU, NCCL on GPU: rank r uses GPU r), each attacks its share of every cascade stage
(`robustperf.attacks.sharding`) and rank 0 stores the merged result, equal to one process's, in the run.
CPU processes share the cores: each gets ``cores // N`` threads.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from robustperf.cli.common import fail

RESULT_ENV = "ROBUSTPERF_EVAL_RESULT_TO"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(nproc: int, args: tuple[Any, ...], poll_seconds: float = 0.2) -> tuple[dict[str, Any], Path]:
    """Run the evaluation `args` (the CLI's, in `_evaluate` order) in `nproc` processes; rank 0's summary and
    JSON path. A process that fails stops the others and the command fails with its error output's tail."""
    payload = json.dumps([str(args[0]), *args[1:]])
    threads = str(max(1, (os.cpu_count() or 1) // nproc))
    with tempfile.TemporaryDirectory(prefix="robustperf-eval-") as tmp:
        out = Path(tmp) / "result_path"
        base = {**os.environ, "WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads), RESULT_ENV: str(out)}
        logs = [Path(tmp) / f"rank{r}.err" for r in range(nproc)]
        procs = []
        for rank in range(nproc):
            env = {**base, "RANK": str(rank), "LOCAL_RANK": str(rank)}
            with logs[rank].open("w") as err:
                procs.append(subprocess.Popen([sys.executable, "-m", "robustperf.cli.evaluate_rank", payload],
                                              env=env, stdout=None if rank == 0 else subprocess.DEVNULL, stderr=err))
        try:
            while any(p.poll() is None for p in procs) and not any(p.poll() for p in procs):
                time.sleep(poll_seconds)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                p.wait(timeout=60)
        bad = [r for r, p in enumerate(procs) if p.returncode]
        if bad:
            tail = logs[bad[0]].read_text()[-1500:].strip()
            fail(f"evaluation process {bad[0]} of {nproc} exited {procs[bad[0]].returncode}: {tail}")
        json_path = Path(out.read_text().strip()) if out.is_file() else None
    if json_path is None or not json_path.is_file():
        fail("the evaluation processes ended without a result: rerun with --nproc 1 to see why")
    return json.loads(json_path.read_text()), json_path
