"""Taking a run as its owner: the run's lock, then the run opened as the owner opens it.

Whoever owns a whole attempt at a run (`train()`, the study's ``run_one`` around training plus evaluation,
the LLM pipeline's commands) holds the lock from before its "already finished?" check until after the
final record, so it takes it here rather than inside `RunSession`. `robustperf.store.lock` is the lock
alone, `robustperf.store.repair` what opening does to a damaged directory; this module joins the two.
"""

from __future__ import annotations

from pathlib import Path

from robustperf.store.lock import RunLock, warn_if_network_fs
from robustperf.store.record import RunDir
from robustperf.store.repair import open_run


def hold_run(directory: str | Path, *, force: bool = False, what: str = "trained") -> RunLock:
    """Acquire the run's lock and open it as its owner (stale temps removed, torn metrics tail cut, damaged
    result.json rebuilt: `robustperf.store.repair.open_run`). Release the returned lock when done.

    Raises:
        RunLockedError: another live process holds the run.
    """
    warn_if_network_fs(Path(directory).parent)
    lock = RunLock(directory, what=what, force=force).acquire()
    try:
        open_run(RunDir(directory))
    except BaseException:
        lock.release()
        raise
    return lock


__all__ = ["hold_run"]
