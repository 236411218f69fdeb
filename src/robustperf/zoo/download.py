"""Fetching a zoo checkpoint, and the failures RobustBench users know, as one line with the fix.

Google Drive answers an HTML page instead of the file when a checkpoint's download quota is used up or it
wants a virus-scan confirmation; the page is then saved under the checkpoint's name and ``torch.load``
fails later with ``invalid load key, '<'``. Both the download and the loader check for that page here and
say what to do instead. Nothing is downloaded unless asked (``download=True``); offline, a missing
checkpoint names the path to put it at.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

GDRIVE_URL = "https://docs.google.com/uc?export=download&confirm=t"
_HTML_STARTS = (b"<!doctype html", b"<html", b"<!DOCTYPE html", b"<HTML", b"<")


class ZooDownloadError(OSError):
    """A checkpoint that could not be fetched or is not a checkpoint; the message says what to do."""


def manual_fix(gdrive_id: str | None, path: Path) -> str:
    where = f"https://drive.google.com/uc?id={gdrive_id}" if gdrive_id else "the authors' release"
    return f"download it in a browser from {where} and save it as {path}, then run again"


def looks_like_html(path: Path) -> bool:
    """True when the file starts like a web page (what Google Drive sends instead of a refused file)."""
    with path.open("rb") as f:
        head = f.read(64).lstrip()
    return head.startswith(_HTML_STARTS)


def check_checkpoint_file(path: Path, gdrive_id: str | None) -> None:
    """Raise `ZooDownloadError` when `path` holds an HTML page instead of a checkpoint."""
    if looks_like_html(path):
        raise ZooDownloadError(f"{path} is an HTML page, not a checkpoint (Google Drive answers a page when the "
                               f"file's download quota is used up or it asks to confirm a virus scan): delete it and "
                               f"{manual_fix(gdrive_id, path)}")


def download_gdrive(gdrive_id: str, path: Path, *, base_url: str = GDRIVE_URL, timeout_s: float = 60.0) -> Path:
    """Download a Google Drive file to `path` (atomically); an HTML answer is refused with the manual fix.

    Raises:
        ZooDownloadError: no network, an HTTP error, or an HTML page instead of the file.
    """
    import requests

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    try:
        with requests.get(base_url, params={"id": gdrive_id}, stream=True, timeout=timeout_s) as response:
            response.raise_for_status()
            kind = response.headers.get("Content-Type", "")
            with tmp.open("wb") as f:
                for chunk in response.iter_content(1 << 20):
                    f.write(chunk)
        if "text/html" in kind or looks_like_html(tmp):
            raise ZooDownloadError(f"Google Drive answered an HTML page instead of the checkpoint {gdrive_id} (its "
                                   f"download quota is used up, or it asks to confirm a virus scan): "
                                   f"{manual_fix(gdrive_id, path)}")
        os.replace(tmp, path)
    except requests.RequestException as exc:
        raise ZooDownloadError(f"cannot download {path.name} ({type(exc).__name__}: {exc}): without a network, "
                               f"{manual_fix(gdrive_id, path)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    log.info("downloaded %s (%d bytes)", path, path.stat().st_size)
    return path


__all__ = ["GDRIVE_URL", "ZooDownloadError", "check_checkpoint_file", "download_gdrive", "looks_like_html"]
