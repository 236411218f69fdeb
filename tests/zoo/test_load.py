"""A zoo model by name from a local RobustBench model_dir: saved in RobustBench's layout and key names,
loaded into robustperf's WideResNet with the same outputs, and the download failures as one line."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
import torch
from zoo_helpers import save_robustbench_style, seeded

from robustperf.registry import RegistryError
from robustperf.zoo import ZooDownloadError, ZooEntry, checkpoint_path, load_zoo_model
from robustperf.zoo.convert import CheckpointMismatch
from robustperf.zoo.download import download_gdrive
from robustperf.zoo.load import build_architecture


def test_a_zoo_model_loads_by_name_with_the_same_outputs(tiny_entry: ZooEntry, tmp_path: Path) -> None:
    original = seeded(build_architecture(tiny_entry))
    save_robustbench_style(tiny_entry, tmp_path, original)
    loaded = load_zoo_model("Tiny2026Zoo", model_dir=tmp_path, dataset="cifar10", threat_model="Linf")
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(x), original(x))
    assert not loaded.training


def test_robustbench_own_wide_resnet_checkpoint_loads_into_robustperf(rb_wide_resnet, tmp_path: Path) -> None:
    """RobustBench's WideResNet-28-10 class (its code, seeded weights) saved as Carmon2019Unlabeled, loaded by
    name: robustperf's model gives RobustBench's logits."""
    torch.manual_seed(0)
    rb = seeded(rb_wide_resnet.WideResNet(depth=28, widen_factor=10, sub_block1=True))
    path = checkpoint_path(tmp_path, "Carmon2019Unlabeled", "cifar10", "Linf")
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in rb.state_dict().items()}}, path)
    ours = load_zoo_model("Carmon2019Unlabeled", model_dir=tmp_path)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), rb(x), rtol=1e-4, atol=1e-4)
    assert sum(p.numel() for p in ours.parameters()) == 36_479_194  # WRN-28-10, 10 classes (REFERENCE.md s.3)


def test_missing_checkpoint_and_unknown_name_fail_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ZooDownloadError) as err:
        load_zoo_model("Carmon2019Unlabeled", model_dir=tmp_path, loader="robustperf")
    message = str(err.value)
    assert "\n" not in message and "Carmon2019Unlabeled.pt" in message and "--download" in message
    assert "https://drive.google.com/uc?id=15tUx-gkZMYx7BfEOw1GY5OKC-jECIsPQ" in message
    with pytest.raises(RegistryError, match="Did you mean 'cifar10/Linf/Carmon2019Unlabeled'"):
        load_zoo_model("Carmon2019Unlabelled", model_dir=tmp_path, loader="robustperf")


def test_google_drive_html_is_one_line_with_the_fix(tmp_path: Path) -> None:
    path = checkpoint_path(tmp_path, "Carmon2019Unlabeled", "cifar10", "Linf")
    path.parent.mkdir(parents=True)
    path.write_text("<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>")
    with pytest.raises(ZooDownloadError) as err:
        load_zoo_model("Carmon2019Unlabeled", model_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message and "HTML page, not a checkpoint" in message and "drive.google.com/uc?id=" in message


class _HtmlHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = b"<html><body>Google Drive can't scan this file for viruses.</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_download_answered_with_html_is_refused(tmp_path: Path) -> None:
    """A local server stands in for Google Drive answering its virus-scan page."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _HtmlHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = tmp_path / "cifar10" / "Linf" / "X.pt"
        with pytest.raises(ZooDownloadError) as err:
            download_gdrive("FILEID", target, base_url=f"http://127.0.0.1:{server.server_port}/uc")
    finally:
        server.shutdown()
    assert "Google Drive answered an HTML page" in str(err.value) and "\n" not in str(err.value)
    assert not target.exists() and not list(target.parent.iterdir())  # nothing half-written is left


def test_a_checkpoint_of_another_architecture_is_named(tiny_entry: ZooEntry, tmp_path: Path) -> None:
    other = ZooEntry("Tiny2026Zoo", "cifar10", "Linf", depth=10, width=2)
    save_robustbench_style(other, tmp_path, build_architecture(other))
    with pytest.raises(CheckpointMismatch, match="does not fit WideResNet-10-1"):
        load_zoo_model("Tiny2026Zoo", model_dir=tmp_path)
