"""Hostile inputs against a real `robustperf human serve` (issue 26's table): each must be a 4xx with the
security headers, or a one-line error, and cost the server nothing.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/human_hostile.py [--mb 300] [--out FILE.md]

Rows: a 300 MB unauthenticated body (declared with Content-Length, and streamed chunked without one)
with the server's RSS before and after; a non-ASCII form token; labels that `int()` would take;
Origin ``null`` / a forged Host / Sec-Fetch-Site same-site; 100 cookieless quiz visits (rows created);
a corrupt and a truncated answers.sqlite (`serve` must refuse with one line); a missing image
(`serve` must start, name it, and answer 404); the database file's mode.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import select
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from robustperf.human.db import StudyDB
from robustperf.human.study import Study, create_study

REPO = Path(__file__).resolve().parents[1]
FIELD = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)"')
HEADERS = ("content-security-policy", "x-content-type-options", "cache-control")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(study: Path, port: int, wait: bool = True) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "robustperf", "human", "serve", str(study), "--port", str(port),
                             "--quiz"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    t0 = time.monotonic()
    while wait and time.monotonic() - t0 < 60:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, ""
        except httpx.TransportError:
            time.sleep(0.1)
    out = proc.communicate(timeout=60)[0] if proc.poll() is not None or not wait else ""
    return proc, out


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def raw_post(port: int, path: str, total_mb: int, chunked: bool, cookie: str = "") -> tuple[int | None, bool, int]:
    """POST `total_mb` MB of form body; returns (status, security headers present, MB actually sent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    size = total_mb * 1024 * 1024
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            + (f"Cookie: {cookie}\r\n" if cookie else "")
            + ("Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n") + "\r\n")
    sock.sendall(head.encode())
    chunk, sent, reply = b"a" * (1 << 20), 0, b""
    try:
        while sent < size:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered before the body ended
            data = b"f=" + chunk[2:] if sent == 0 else chunk  # one well-formed form field of `total_mb` MB
            sock.sendall((b"100000\r\n" + data + b"\r\n") if chunked else data)
            sent += len(chunk)
        if chunked and sent >= size:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server closed the connection on us: what it answered is read below
    try:
        sock.settimeout(30)
        while b"\r\n\r\n" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    except OSError:
        pass
    sock.close()
    text = reply.decode("latin-1").lower()
    match = re.match(r"http/1\.1 (\d+)", text)
    return (int(match.group(1)) if match else None), all(h in text for h in HEADERS), sent >> 20


def make_study(tmp: Path) -> Study:
    rng = np.random.default_rng(0)
    n = 24
    export = tmp / "export.npz"
    np.savez_compressed(export, robust_flags=np.zeros(n, bool), clean_flags=np.ones(n, bool), index=np.arange(n),
                        y=rng.integers(0, 10, n), y_adv=rng.integers(0, 10, n),
                        x_adv=rng.random((n, 3, 32, 32)).astype(np.float32),
                        x_clean=rng.random((n, 3, 32, 32)).astype(np.float32))  # fmt: skip
    try:
        return create_study(export, tmp / "study", [f"c{k}" for k in range(10)], batch_size=10, quiz_pool=4)
    except TypeError:  # code before issue 26 (no quiz pool): the same table, for the "before" column
        return create_study(export, tmp / "study", [f"c{k}" for k in range(10)], batch_size=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=300, help="size of the oversized body")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="human_hostile_"))
    study = make_study(tmp)
    db = StudyDB(study)
    token = db.invite("alice")
    db.close()
    rows: list[tuple[str, str, str]] = []
    port = free_port()
    proc, _ = serve(study.root, port)
    base = f"http://127.0.0.1:{port}"
    try:
        for chunked in (False, True):
            before = rss_mb(proc.pid)
            status, headers, sent = raw_post(port, "/quiz/answer", args.mb, chunked)
            after = rss_mb(proc.pid)
            how = "chunked, no Content-Length" if chunked else "Content-Length"
            rows.append((f"{args.mb} MB unauthenticated POST /quiz/answer ({how})",
                         f"{status}, headers {'present' if headers else 'MISSING'}",
                         f"client sent {sent} MB before the reply; server RSS {before:.0f} -> {after:.0f} MB"))
        with httpx.Client(base_url=base) as alice:
            alice.get(f"/l/{token}")
            fields = dict(FIELD.findall(alice.get("/batch/0").text))
            cookie_is_token = alice.cookies.get("rp_labeller") == token
            before = rss_mb(proc.pid)
            status, headers, sent = raw_post(port, "/answer", args.mb, True, f"rp_labeller={alice.cookies['rp_labeller']}")
            rows.append((f"{args.mb} MB POST /answer, signed in (chunked, no Content-Length)",
                         f"{status}, headers {'present' if headers else 'MISSING'}",
                         f"client sent {sent} MB before the reply; server RSS {before:.0f} -> {rss_mb(proc.pid):.0f} MB"))

            def post(name: str, data: dict[str, str], headers: dict[str, str] | None = None) -> None:
                r = alice.post("/answer", data=data, headers=headers or {})
                ok = all(h in r.headers for h in HEADERS)
                rows.append((name, f"{r.status_code}, headers {'present' if ok else 'MISSING'}", ""))

            post("non-ASCII csrf_token ('é' x 64)", fields | {"csrf_token": "\u00e9" * 64, "label": "1",
                                                              "confidence": "low"})  # fmt: skip
            for label in (" 3", "\u0663", "0_1"):
                post(f"label {label!r}", fields | {"label": label, "confidence": "low"})
            post("Origin: null", fields | {"label": "1", "confidence": "low"}, {"origin": "null"})
            post("forged Host + matching Origin", fields | {"label": "1", "confidence": "low"},
                 {"host": "evil.example", "origin": "http://evil.example"})
            post("Sec-Fetch-Site: same-site", fields | {"label": "1", "confidence": "low"}, {"sec-fetch-site": "same-site"})
        for _ in range(100):
            httpx.get(f"{base}/quiz")
        with sqlite3.connect(study.root / "answers.sqlite") as conn:
            n_rows = conn.execute("select count(*) from quiz_sessions").fetchone()[0]
            n_answers = conn.execute("select count(*) from answers").fetchone()[0]
        rows.append(("100 cookieless GET /quiz", f"{n_rows} quiz_sessions rows", ""))
        rows.append(("session cookie == invite token", str(cookie_is_token), ""))
        rows.append(("answers stored by all of the above", str(n_answers), ""))
        mode = stat.S_IMODE((study.root / "answers.sqlite").stat().st_mode)
        rows.append(("answers.sqlite mode", oct(mode), ""))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for damage in ("corrupt", "truncated"):
        copy = tmp / f"study_{damage}"
        shutil.copytree(study.root, copy)
        for side in ("-wal", "-shm"):
            (copy / f"answers.sqlite{side}").unlink(missing_ok=True)
        data = (copy / "answers.sqlite").read_bytes()
        (copy / "answers.sqlite").write_bytes(b"garbage " * 4096 if damage == "corrupt" else data[: len(data) // 2])
        p, out = serve(copy, free_port(), wait=False)
        lines = [ln for ln in out.strip().splitlines() if ln.strip()]
        rows.append((f"{damage} answers.sqlite, `serve`", f"exit {p.returncode}, {len(lines)} line(s)",
                     " ".join(lines)[:160]))
    gone = study.images[0].id
    (study.root / "images" / "adv" / f"{gone}.png").unlink()
    port = free_port()
    proc, out = serve(study.root, port)
    if proc.poll() is not None:  # the server did not come up
        lines = [ln for ln in out.strip().splitlines() if ln.strip()]
        rows.append(("first image file missing, `serve`", f"exit {proc.returncode}, {len(lines)} line(s)",
                     "server did not start"))
    else:
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as alice:
                alice.get(f"/l/{token}")
                r = alice.get(f"/image/adv/{gone}")
                ok = all(h in r.headers for h in HEADERS)
                rows.append(("first image file missing, GET it",
                             f"{r.status_code}, headers {'present' if ok else 'MISSING'}", "server started"))
        finally:
            proc.terminate()
            named = proc.communicate(timeout=30)[0]
        rows[-1] = (*rows[-1][:2], rows[-1][2] + ("; `serve` named it at start" if gone in named else "; NOT named"))
    lines = ["# Hostile inputs against `robustperf human serve` (benchmarks/human_hostile.py)", "",
             f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
             f"load average {os.getloadavg()[0]:.1f}", "", "| input | result | notes |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    print("\n".join(lines))
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
