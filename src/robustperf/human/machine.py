"""Machine labellers beside the humans: a vision chat model (papers/001 Appendix G.2) or a local model.

`ChatLabeller` sends the paper's GPT-4 prompt (Figure 17) and payload (Figure 18: one user message with
the prompt and the image as a base64 data URL, temperature 0, max_tokens 3200) to any OpenAI-compatible
``/chat/completions`` endpoint and parses the reply's final "{class}, {confidence}". The prompt asks for
'low' or 'higher' exactly as the paper printed it; 'higher' and 'high' both read as high confidence.
The key comes from an environment variable, never from the command line or a file.

`ModelLabeller` labels with a trained robustperf run (or any model with the run's input shape): the
argmax class, high confidence when the softmax probability reaches ``high_threshold``. It sees the
stored 8-bit PNG, the same pixels the humans see.

`label_study` runs either over a study's items that labeller has not answered yet (so an interrupted
run resumes), stores answers through `StudyDB` (one commit each) and appends every raw reply to
``STUDY/machine/<name>.jsonl`` for audit.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robustperf.human.study import CIFAR10_CLASSES, VERSIONS, Study
from robustperf.store.io import append_jsonl

log = logging.getLogger(__name__)


def gpt4_prompt(classes: tuple[str, ...] | list[str]) -> str:
    """papers/001 Figure 17's prompt; for CIFAR-10 word for word, for other class sets the same template."""
    classes = tuple(classes)
    if classes == CIFAR10_CLASSES:
        listed = ("airplane, automobile (but not truck or pickup truck), bird, cat, deer, dog, frog, horse, ship, "
                  "and truck (but not pickup truck)")
    else:
        listed = ", ".join(classes[:-1]) + f", and {classes[-1]}" if len(classes) > 1 else classes[0]
    k = len(classes)
    return (f"I will give you an image that contains one of {k} classes. "
            f"The {k} classes are [{listed}]. "
            f"Your reply to the image will tell me which of the {k} classes the image contains. "
            "Feel free to reason about the contents of the image, but the final two words of your response must "
            "be in the following format: '{class}, {confidence}'. "
            f"'class' must be one of the {k} classes. 'confidence' must be 'low' or 'higher' -- only say 'low' if "
            "you think it is unlikely that you have identified the correct class.")  # fmt: skip


def parse_reply(reply: str, classes: tuple[str, ...] | list[str]) -> tuple[int, str] | None:
    """The (class index, "low"/"high") that a reply ends with, or None when it does not end that way."""
    tail = reply.strip().lower()[-200:]
    tail = re.sub(r"[\s'\"`*_.!)\]]+$", "", tail)  # closing quotes, markdown emphasis, full stop
    best: tuple[int, int, str] | None = None  # (match start, class index, confidence)
    for index, name in enumerate(classes):
        m = re.search(rf"(?<![a-z0-9]){re.escape(name.lower())}['\"`*_]*\s*,\s*['\"`*_]*(low|higher|high)$", tail)
        if m and (best is None or m.start() < best[0]):  # the longest class name that fits wins
            best = (m.start(), index, "low" if m.group(1) == "low" else "high")
    return None if best is None else (best[1], best[2])


@dataclass(frozen=True)
class MachineAnswer:
    label: int | None
    confidence: str | None
    reply: str


class MachineLabeller(Protocol):
    def label(self, png: bytes) -> MachineAnswer: ...


@dataclass(frozen=True)
class ChatLabellerConfig:
    """An OpenAI-compatible chat endpoint with image input.

    Attributes:
        endpoint: base URL (``https://api.openai.com/v1``) or the full ``.../chat/completions`` URL.
        model: the model name sent in the payload.
        api_key_env: environment variable holding the key ("" for endpoints that need none).
        temperature: sampling temperature (the paper used 0).
        max_tokens: reply budget (the paper used 3200).
        timeout_s: per-request timeout.
        max_retries: retries on connection errors, 429 and 5xx, with exponential back-off.
    """

    endpoint: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 3200
    timeout_s: float = 120.0
    max_retries: int = 4


class ChatLabeller:
    """Labels one image per request with the paper's prompt (see module docstring)."""

    def __init__(self, config: ChatLabellerConfig, classes: tuple[str, ...] | list[str]) -> None:
        self.config = config
        self.classes = tuple(classes)
        self.prompt = gpt4_prompt(self.classes)

    @property
    def url(self) -> str:
        base = self.config.endpoint.rstrip("/")
        return base if base.endswith("/chat/completions") else f"{base}/chat/completions"

    def check(self) -> None:
        """Fail before any request when the key variable is unset or the URL is not http(s)."""
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"--endpoint {self.config.endpoint!r}: use an http(s) URL such as https://api.openai.com/v1")
        if self.config.api_key_env and not os.environ.get(self.config.api_key_env):
            raise ValueError(f"environment variable {self.config.api_key_env} is not set: export the API key there "
                             "(or pass --key-env '' for an endpoint without keys)")

    def payload(self, png: bytes) -> dict[str, Any]:
        """papers/001 Figure 18's payload."""
        data_url = "data:image/png;base64," + base64.b64encode(png).decode()
        return {
            "model": self.config.model,
            "messages": [{"role": "user", "content": [{"type": "text", "text": self.prompt},
                                                      {"type": "image_url", "image_url": {"url": data_url}}]}],
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
        }  # fmt: skip

    def label(self, png: bytes) -> MachineAnswer:
        body = json.dumps(self.payload(png)).encode()
        headers = {"Content-Type": "application/json"}
        if self.config.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ.get(self.config.api_key_env, '')}"
        delay = 1.0
        for attempt in range(self.config.max_retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_s) as resp:
                    reply = json.loads(resp.read())["choices"][0]["message"]["content"] or ""
                break
            except urllib.error.HTTPError as exc:
                if exc.code not in (429, 500, 502, 503, 504) or attempt == self.config.max_retries:
                    raise RuntimeError(f"{self.url} answered {exc.code}: {exc.read()[:300]!r}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.config.max_retries:
                    raise RuntimeError(f"cannot reach {self.url}: {exc}") from None
            log.info("retrying %s in %.0f s", self.url, delay)
            time.sleep(delay)
            delay *= 2
        parsed = parse_reply(reply, self.classes)
        if parsed is None:
            return MachineAnswer(None, None, reply)
        return MachineAnswer(parsed[0], parsed[1], reply)


def png_to_tensor_array(png: bytes) -> np.ndarray:
    """PNG bytes -> float32 (C, H, W) in [0, 1]."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        arr = np.asarray(img, dtype=np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


class ModelLabeller:
    """A local classifier as a labeller (module docstring).

    Args:
        model: a torch module taking (B, C, H, W) pixels in [0, 1] (robustperf models normalise inside).
        high_threshold: softmax probability from which the answer is "high" confidence.
    """

    def __init__(self, model: Any, high_threshold: float = 0.5) -> None:
        if not 0 < high_threshold <= 1:
            raise ValueError(f"high_threshold={high_threshold}: use a probability in (0, 1]")
        self.model = model
        self.high_threshold = high_threshold

    @classmethod
    def from_run(cls, run_dir: str | Path, which: str = "best", high_threshold: float = 0.5) -> ModelLabeller:
        from robustperf.models import load_run_model

        model, _ = load_run_model(run_dir, which=which, device="cpu")
        return cls(model, high_threshold)

    def label(self, png: bytes) -> MachineAnswer:
        import torch

        x = torch.from_numpy(png_to_tensor_array(png))[None]
        with torch.no_grad():
            probs = torch.softmax(self.model(x).float(), dim=1)[0]
        p, k = float(probs.max()), int(probs.argmax())
        conf = "high" if p >= self.high_threshold else "low"
        return MachineAnswer(k, conf, reply=f"p={p:.4f}")


@dataclass(frozen=True)
class LabelRunResult:
    n_stored: int
    n_unparsed: int
    n_skipped: int  # already answered before this run


def label_study(study: Study, db: Any, name: str, labeller: MachineLabeller, *,
                versions: tuple[str, ...] = ("adv",), limit: int | None = None) -> LabelRunResult:
    """Label every study item (adversarial first) that machine labeller `name` has not answered yet.

    Args:
        study: the study.
        db: its `StudyDB`.
        name: the machine labeller's name in the study (created on first use).
        labeller: a `ChatLabeller` or `ModelLabeller`.
        versions: which versions to label (the paper's GPT-4 labelled the adversarial images only).
        limit: stop after this many requests (None: all).
    """
    bad = [v for v in versions if v not in VERSIONS]
    if bad or not versions:
        raise ValueError(f"versions {list(versions)}: use adv, clean or both")
    who = db.machine_labeller(name)
    done = db.answered(who)
    log_path = study.root / "machine" / f"{name}.jsonl"
    stored = unparsed = skipped = requests = 0
    for version in [v for v in VERSIONS if v in versions]:
        for im in study.images:
            if (im.id, version) in done or im.id in db.skipped:  # answered already, or its file is missing
                skipped += 1
                continue
            if limit is not None and requests >= limit:
                return LabelRunResult(stored, unparsed, skipped)
            path = study.image_path(im.id, version)
            assert path is not None
            result = labeller.label(path.read_bytes())
            requests += 1
            append_jsonl(log_path, {"image_id": im.id, "version": version, "label": result.label,
                                    "confidence": result.confidence, "reply": result.reply})
            if result.label is None:
                unparsed += 1
                log.warning("%s: reply for %s/%s does not end in '{class}, {confidence}': %r", name, version, im.id,
                            result.reply[-120:])
                continue
            db.record_answer(who, im.id, version, result.label, result.confidence)
            stored += 1
    return LabelRunResult(stored, unparsed, skipped)


__all__ = ["ChatLabeller", "ChatLabellerConfig", "LabelRunResult", "MachineAnswer", "ModelLabeller", "gpt4_prompt",
           "label_study", "parse_reply"]
