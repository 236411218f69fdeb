"""Run the robustperf CLI with a kill -9 planted inside one write window (fault injection for tests).

    python inject.py WINDOW FILE NTH -- train CONFIG --runs-dir DIR

kills this process with SIGKILL the NTH time it is about to finish writing FILE:

- ``replace``: the temp file of an atomic write is complete and fsynced, ``os.replace`` has not run
  (checkpoints, result.json, index.sqlite, the report's files): a stale temp file is left behind.
- ``append``: half of a metrics line is written with no newline (a torn append), then the kill.
- ``term``: SIGTERM (what ``scancel`` or a preempting scheduler sends) instead of a kill, at that moment;
  the run checkpoints at its current step and exits as interrupted.

Nothing is simulated after the kill: the next process sees exactly what the kernel left on disk.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(window: str, name: str, nth: int) -> None:
    seen = {"n": 0}

    def hit(path: Any) -> bool:
        if Path(str(path)).name != name:
            return False
        seen["n"] += 1
        return seen["n"] == nth

    if window in ("replace", "term"):
        real_replace = os.replace

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if hit(dst):
                if window == "replace":
                    _die()
                os.kill(os.getpid(), signal.SIGTERM)  # what scancel / preemption sends; the write goes on
            real_replace(src, dst, *args, **kwargs)

        os.replace = replace  # Path.replace calls os.replace too
    elif window == "append":
        import robustperf.store.record as record
        from robustperf.store.io import dumps

        real_append = record.append_jsonl

        def append(path: Any, obj: Any) -> None:
            if hit(path):
                line = dumps(obj) + "\n"
                with open(path, "a", encoding="utf-8") as f:
                    f.write(line[: len(line) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                _die()
            real_append(path, obj)

        record.append_jsonl = append
    else:
        raise SystemExit(f"unknown window {window!r}: replace, append or term")


if __name__ == "__main__":
    window, name, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
    assert sys.argv[4] == "--", "usage: inject.py WINDOW FILE NTH -- robustperf arguments"
    install(window, name, nth)
    from robustperf.cli.app import app

    sys.argv = ["robustperf", *sys.argv[5:]]
    app()
