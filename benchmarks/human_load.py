"""Load and fault test of the labelling server: N simulated labellers while the server is killed and restarted.

Each labeller (one thread, its own HTTP client and cookie) opens its secret link and answers its
batches like the browser does: GET the batch page, read the form, POST the answer, no think time. A
killer thread sends SIGKILL to the server (a real `robustperf human serve` subprocess on loopback)
after 1/3 and 2/3 of the answers and restarts it after ``--down-s`` seconds. Clients retry a request
that failed at the connection level (a retried POST whose first attempt was committed comes back
"unchanged"). Each reply must name the answer sent as the one stored. At the end every acknowledged
answer must be in the database, with the value sent, and nothing else: "sent" = answers acknowledged
to the client, "stored" = rows in the database.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/human_load.py [--labellers 24] [--images 20] [--out FILE.md]

Latency: one successful request (server time + loopback) and user-perceived (first attempt to success,
including the waits while the server was down), p50/p95/max.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from robustperf.human.db import StudyDB
from robustperf.human.study import create_study

REPO = Path(__file__).resolve().parents[1]
FIELD = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)"')


class Server:
    """`robustperf human serve` as a subprocess that can be SIGKILLed and restarted on the same port."""

    def __init__(self, study: Path, port: int) -> None:
        self.study, self.port, self.proc = study, port, None
        self.env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}

    def start(self) -> float:
        t0 = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "robustperf", "human", "serve", str(self.study),
                                      "--port", str(self.port)], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except httpx.TransportError:
                pass
            if time.monotonic() - t0 > 60:
                raise RuntimeError("server did not come up in 60 s")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


class Labeller(threading.Thread):
    def __init__(self, base: str, token: str, batches: list[int], seed: int, retry_s: float = 120.0) -> None:
        super().__init__(daemon=True)
        self.base, self.token, self.batches, self.retry_s = base, token, batches, retry_s
        self.rng = np.random.default_rng(seed)
        self.acked: dict[tuple[str, str], tuple[int, str]] = {}
        self.request_s: list[float] = []
        self.perceived_s: list[float] = []
        self.retries = 0
        self.statuses: dict[str, int] = {}
        self.error: str | None = None

    def _call(self, client: httpx.Client, method: str, url: str, **kw) -> httpx.Response:
        t_first = time.monotonic()
        while True:
            t0 = time.monotonic()
            try:
                r = client.request(method, url, **kw)
            except httpx.TransportError:
                if time.monotonic() - t_first > self.retry_s:
                    raise
                self.retries += 1
                time.sleep(0.1)
                continue
            if method == "POST":
                self.request_s.append(time.monotonic() - t0)
                self.perceived_s.append(time.monotonic() - t_first)
            return r

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base, timeout=30, follow_redirects=True) as client:
                self._call(client, "GET", f"/l/{self.token}").raise_for_status()
                for batch in self.batches:
                    while True:
                        page = self._call(client, "GET", f"/batch/{batch}")
                        page.raise_for_status()
                        if 'id="done"' in page.text:
                            break
                        form = dict(FIELD.findall(page.text))
                        label, conf = int(self.rng.integers(0, 10)), ("low", "high")[int(self.rng.integers(0, 2))]
                        r = self._call(client, "POST", "/answer", data={**form, "label": label, "confidence": conf},
                                       headers={"accept": "application/json"})  # fmt: skip
                        r.raise_for_status()
                        reply = r.json()
                        status = reply["status"]
                        if (reply.get("label", label), reply.get("confidence", conf)) != (label, conf):
                            raise RuntimeError(f"sent {label}/{conf}, the server says it stored {reply}")
                        self.statuses[status] = self.statuses.get(status, 0) + 1
                        self.acked[(form["image_id"], form["version"])] = (label, conf)
        except Exception as exc:  # reported in the results, never hidden
            self.error = f"{type(exc).__name__}: {exc}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labellers", type=int, default=24)
    ap.add_argument("--images", type=int, default=20, help="images per labeller (each labelled adv + clean)")
    ap.add_argument("--batch-size", type=int, default=10)
    ap.add_argument("--kills", type=int, default=2)
    ap.add_argument("--down-s", type=float, default=1.0, help="seconds the server stays dead")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.labellers < 1 or args.images < 1:
        raise SystemExit("--labellers and --images must be >= 1")

    tmp = Path(tempfile.mkdtemp(prefix="human_load_"))
    rng = np.random.default_rng(0)
    n = args.images
    export = tmp / "export.npz"
    np.savez_compressed(export, robust_flags=np.zeros(n, bool), clean_flags=np.ones(n, bool), index=np.arange(n),
                        y=rng.integers(0, 10, n), y_adv=rng.integers(0, 10, n),
                        x_adv=rng.random((n, 3, 32, 32)).astype(np.float32),
                        x_clean=rng.random((n, 3, 32, 32)).astype(np.float32))  # fmt: skip
    study = create_study(export, tmp / "study", [f"c{k}" for k in range(10)], batch_size=args.batch_size)
    db = StudyDB(study)
    tokens = [db.invite(f"sim{k:03d}") for k in range(args.labellers)]
    db.close()
    expected = args.labellers * 2 * n

    port = free_port()
    server = Server(study.root, port)
    startup_s = [server.start()]
    load_start = os.getloadavg()[0]
    clients = [Labeller(f"http://127.0.0.1:{port}", t, list(range(study.n_batches)), seed=k)
               for k, t in enumerate(tokens)]  # fmt: skip
    t0 = time.monotonic()
    for c in clients:
        c.start()
    kills_at: list[int] = []
    for k in range(1, args.kills + 1):
        while sum(len(c.acked) for c in clients) < expected * k / (args.kills + 1) and any(c.is_alive() for c in clients):
            time.sleep(0.01)
        if not any(c.is_alive() for c in clients):
            break
        kills_at.append(sum(len(c.acked) for c in clients))
        server.kill()
        time.sleep(args.down_s)
        startup_s.append(server.start())
    for c in clients:
        c.join()
    wall = time.monotonic() - t0
    server.stop()

    stored = {(a.labeller, a.image_id, a.version): (a.label, a.confidence) for a in StudyDB(study).all_answers()}
    sent = {(f"sim{k:03d}", *key): v for k, c in enumerate(clients) for key, v in c.acked.items()}
    errors = [c.error for c in clients if c.error]
    request_s = [x for c in clients for x in c.request_s]
    perceived_s = [x for c in clients for x in c.perceived_s]
    result = {
        "labellers": args.labellers, "answers_expected": expected, "answers_sent": len(sent),
        "answers_stored": len(stored), "sent_equals_stored": sent == stored, "client_errors": errors,
        "kills": len(kills_at), "kills_at_answer": kills_at, "down_s": args.down_s,
        "server_start_s": [round(s, 3) for s in startup_s], "retries": sum(c.retries for c in clients),
        "server_replies": {k: sum(c.statuses.get(k, 0) for c in clients) for k in ("stored", "unchanged", "updated")},
        "wall_s": round(wall, 2), "answers_per_s": round(len(sent) / wall, 1),
        "request_p50_ms": round(1000 * pct(request_s, 50), 1), "request_p95_ms": round(1000 * pct(request_s, 95), 1),
        "request_max_ms": round(1000 * max(request_s), 1),
        "perceived_p50_ms": round(1000 * pct(perceived_s, 50), 1),
        "perceived_p95_ms": round(1000 * pct(perceived_s, 95), 1),
        "perceived_max_ms": round(1000 * max(perceived_s), 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}, "
                   f"load average {load_start:.1f} at start / {os.getloadavg()[0]:.1f} at end",
        "db": "SQLite WAL, synchronous=FULL, one commit per answer",
    }  # fmt: skip
    lines = [
        "# Labelling server under load and kill -9 (benchmarks/human_load.py)",
        "",
        f"machine: {result['machine']}",
        f"{args.labellers} simulated labellers on loopback, {n} images each labelled adversarial + clean "
        f"({expected} answers), no think time; server SIGKILLed {len(kills_at)}x (after {kills_at} answers), "
        f"down {args.down_s} s each, restarted ({', '.join(f'{s:.2f}' for s in startup_s)} s to healthy).",
        "",
        f"answers sent (acknowledged) {len(sent)}, stored {len(stored)}, identical: {sent == stored}; "
        f"client errors: {len(errors)}; connection-level retries: {result['retries']}; server replies "
        f"{result['server_replies']} ('unchanged' = committed before the kill, acknowledgement lost, retried)",
        f"one answer request: p50 {result['request_p50_ms']} ms, p95 {result['request_p95_ms']} ms, "
        f"max {result['request_max_ms']} ms",
        f"user-perceived (incl. waiting out the restarts): p50 {result['perceived_p50_ms']} ms, "
        f"p95 {result['perceived_p95_ms']} ms, max {result['perceived_max_ms']} ms",
        f"throughput {result['answers_per_s']} answers/s over {result['wall_s']} s",
    ]
    print("\n".join(lines))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    if sent != stored or errors:
        raise SystemExit("FAILED: acknowledged answers and stored answers differ")


if __name__ == "__main__":
    main()
