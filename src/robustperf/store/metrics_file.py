"""The metrics file (``metrics.jsonl``) of a run: a torn last line cut, rows logged after a checkpoint dropped.

Both are what the owner of a run does to the file before appending to it again: `repair_metrics_tail` when
the run is opened (`robustperf.store.repair.open_run`), `truncate_metrics_after` when an attempt resumes
from a checkpoint (`RunSession.open`). Neither cuts through a link: a planted symlink or a second hard link
is refused (`robustperf.store.io.refuse_links`, ``O_NOFOLLOW``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from robustperf.store.io import dumps, open_no_follow, read_jsonl, refuse_links, write_bytes_atomic

log = logging.getLogger(__name__)


def repair_metrics_tail(path: str | Path) -> int:
    """Cut a JSON-lines file back to its last complete line; returns the number of lines dropped (0 or 1).

    A line is complete when it ends with a newline and parses as JSON; a torn last line (kill -9 or a full
    disk during an append) fails one or both. Lines before it are kept as they are.
    """
    p = Path(path)
    refuse_links(p.parent, p)  # never cut a file a planted link points at
    if not p.is_file():
        return 0
    data = p.read_bytes()
    if not data:
        return 0
    end = len(data)
    if not data.endswith(b"\n"):
        end = data.rfind(b"\n") + 1  # 0 when the only line is torn
    else:
        start = data.rfind(b"\n", 0, len(data) - 1) + 1
        try:
            json.loads(data[start:end])
        except ValueError:
            end = start
    if end == len(data):
        return 0
    _cut(p, end)
    log.warning("%s: dropped 1 torn line at its end (%d bytes) left by an interrupted write", p, len(data) - end)
    return 1


def _cut(path: Path, size: int) -> None:
    """Truncate the file at `path` to `size` bytes, refusing a link (``O_NOFOLLOW``, one hard link)."""
    fd = open_no_follow(path, os.O_RDWR)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def truncate_metrics_after(path: str | Path, step: int, expected_evals: int | None = None,
                           size_at_checkpoint: int | None = None) -> int:
    """On resume from a checkpoint at `step`: drop the rows logged after it (they are about to be redone).

    With `size_at_checkpoint` (the file's size when the checkpoint was written) the file is cut back to
    exactly that size, which also drops rows logged at the checkpoint's own step after it was written (an
    evaluation at an epoch end that follows a mid-epoch checkpoint at the same step); without it, rows
    with a larger step are dropped. Returns the number of rows dropped. With `expected_evals` (evaluation
    rows the run wrote up to `step`), a file holding fewer is reported: rows were lost (a truncated file).
    """
    p = Path(path)
    refuse_links(p.parent, p)
    if size_at_checkpoint is not None and p.is_file():
        size = p.stat().st_size
        if size < size_at_checkpoint:
            log.warning("%s is shorter (%d bytes) than when the checkpoint at step %d was written (%d bytes): rows "
                        "were lost (a truncated file); the run goes on, its curves have gaps", p, size, step,
                        size_at_checkpoint)
            dropped = 0
        else:
            with open(p, "rb") as f:
                f.seek(size_at_checkpoint)
                dropped = sum(1 for line in f.read().splitlines() if line.strip())
            _cut(p, size_at_checkpoint)
        rows = read_jsonl(p)
    else:
        rows = read_jsonl(p)
        kept = [r for r in rows if r.get("step", 0) <= step]
        dropped = len(rows) - len(kept)
        if dropped:
            write_bytes_atomic(p, "".join(dumps(r) + "\n" for r in kept).encode())
        rows = kept
    if dropped:
        log.info("%s: dropped %d row(s) logged after the checkpoint at step %d (they are redone)", p, dropped, step)
    if expected_evals is not None:
        n_evals = sum(1 for r in rows if r.get("kind") == "eval")
        if n_evals < expected_evals:
            log.warning("%s holds %d of the %d evaluation rows written before step %d: rows were lost (a truncated "
                        "file); the run goes on, its curves have gaps", p, n_evals, expected_evals, step)
    return dropped


__all__ = ["repair_metrics_tail", "truncate_metrics_after"]
