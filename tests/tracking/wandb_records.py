"""Read a W&B offline run file (``run-<id>.wandb``) with W&B's own protobuf `Record` schema.

wandb 0.31 reads these files in its Go core only (`wandb sync`), so the framing is read here: the file
starts with a 7-byte header (``:W&B``, magic 0xBEE1, version), then LevelDB-log blocks of 32 KiB holding
chunks with a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last).
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    ident, magic, _version = struct.unpack("<4sHB", data[:HEADER])
    assert ident == b":W&B" and magic == 0xBEE1, (ident, magic)
    out, pos, pending = [], HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # the block's tail is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if pos + HEADER + length > len(data):  # still being written
            break
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(pending)
            out.append(rec)
            pending = b""
    return out


def complete_records(file: Path, timeout_s: float = 30.0) -> list[Any]:
    """The records once the run's `exit` record is on disk: `wandb.finish()` can return while W&B's core
    process is still flushing the file (seen here on a busy 2-core machine)."""
    deadline = time.monotonic() + timeout_s
    while True:
        recs = records(file)
        if any(r.WhichOneof("record_type") == "exit" for r in recs) or time.monotonic() > deadline:
            return recs
        time.sleep(0.2)


def read_offline_run(run_dir: Path) -> dict[str, Any]:
    """{"history": {key: [(step, value)]}, "summary": {...}, "config": {...}, "run_id": ...} of one offline run."""
    (file,) = run_dir.glob("run-*.wandb")
    history: dict[str, list[tuple[int, float]]] = {}
    summary: dict[str, Any] = {}
    config: dict[str, Any] = {}
    run_id = None
    for rec in complete_records(file):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run_id = rec.run.run_id
            for item in rec.run.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "history":
            row = {(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in rec.history.item}
            step = int(row.pop("_step", rec.history.step.num))
            for key, value in row.items():
                if not key.startswith("_"):
                    history.setdefault(key, []).append((step, value))
        elif kind == "summary":
            for item in rec.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return {"run_id": run_id, "history": history, "summary": summary, "config": config}
