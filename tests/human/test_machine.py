"""Machine labellers: the paper's prompt and reply format, an OpenAI-compatible API imitated on loopback, a local model."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from robustperf.human.db import StudyDB
from robustperf.human.machine import (
    ChatLabeller,
    ChatLabellerConfig,
    ModelLabeller,
    gpt4_prompt,
    label_study,
    parse_reply,
)
from robustperf.human.study import CIFAR10_CLASSES

PAPER_PROMPT = (  # papers/001 Figure 17, with the figure's line breaks joined
    "I will give you an image that contains one of 10 classes. The 10 classes are [airplane, automobile (but not "
    "truck or pickup truck), bird, cat, deer, dog, frog, horse, ship, and truck (but not pickup truck)]. Your reply "
    "to the image will tell me which of the 10 classes the image contains. Feel free to reason about the contents of "
    "the image, but the final two words of your response must be in the following format: '{class}, {confidence}'. "
    "'class' must be one of the 10 classes. 'confidence' must be 'low' or 'higher' -- only say 'low' if you think it "
    "is unlikely that you have identified the correct class."
)


def test_prompt_is_the_papers() -> None:
    assert gpt4_prompt(CIFAR10_CLASSES) == PAPER_PROMPT
    assert "[0, 1, and 2]" in gpt4_prompt(("0", "1", "2")) and "one of 3 classes" in gpt4_prompt(("0", "1", "2"))


@pytest.mark.parametrize("reply,expected", [
    ("The image shows wings and a fuselage. airplane, higher", (0, "high")),
    ("Looks like a small car.\n\n**automobile, low**", (1, "low")),
    ("It could be a cat or a dog. 'Dog, high'.", (5, "high")),
    ("truck, higher", (9, "high")),
    ("I see a horse", None),
    ("horse, medium", None),
    ("airplane, high. But maybe not.", None),  # the format must end the reply
])  # fmt: skip
def test_parse_reply(reply: str, expected) -> None:
    assert parse_reply(reply, CIFAR10_CLASSES) == expected


class FakeAPI:
    """A loopback server imitating /v1/chat/completions: it reads the image from the payload and answers."""

    def __init__(self, answers: dict[str, str], fail_first: int = 0) -> None:
        self.answers, self.fail_first, self.requests = answers, fail_first, []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((self.path, dict(self.headers), body))
                if owner.fail_first > 0:
                    owner.fail_first -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                url = body["messages"][0]["content"][1]["image_url"]["url"]
                png = base64.b64decode(url.split(",", 1)[1])
                reply = owner.answers.get(hashlib.sha256(png).hexdigest(), "no idea")
                out = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeAPI:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api_key(monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("RP_TEST_KEY", "sk-test")
    yield "RP_TEST_KEY"


def test_chat_labeller_against_a_local_api(study, api_key) -> None:
    # the imitation answers the true class for the first 8 adversarial images, garbage for the rest
    answers = {}
    for k, im in enumerate(study.images):
        png = study.image_path(im.id, "adv").read_bytes()
        if k < 8:
            answers[hashlib.sha256(png).hexdigest()] = f"I think so. {study.classes[im.label]}, {'higher' if k % 2 else 'low'}"
    db = StudyDB(study)
    with FakeAPI(answers, fail_first=1) as api:
        labeller = ChatLabeller(ChatLabellerConfig(endpoint=api.url, model="gpt-test", api_key_env=api_key),
                                study.classes)  # fmt: skip
        labeller.check()
        result = label_study(study, db, "gpt", labeller)
        path, headers, body = api.requests[-1]
    assert (result.n_stored, result.n_unparsed, result.n_skipped) == (8, 4, 0)
    assert len(api.requests) == 13  # 12 images + one retried 503
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "gpt-test" and body["temperature"] == 0.0 and body["max_tokens"] == 3200
    assert body["messages"][0]["content"][0]["text"] == gpt4_prompt(study.classes)
    stored = {a.image_id: (a.label, a.confidence, a.kind) for a in db.all_answers()}
    assert stored == {im.id: (im.label, "high" if k % 2 else "low", "machine") for k, im in enumerate(study.images[:8])}
    assert len((study.root / "machine" / "gpt.jsonl").read_text().splitlines()) == 12  # every raw reply kept
    with FakeAPI(answers) as api:  # a second run resumes: only the 4 unparsed images are asked again
        again = label_study(study, db, "gpt", ChatLabeller(ChatLabellerConfig(api.url, "gpt-test", api_key), study.classes))
        assert (again.n_skipped, len(api.requests)) == (8, 4)


def test_chat_labeller_needs_its_key_before_any_request(study, monkeypatch) -> None:
    monkeypatch.delenv("RP_MISSING_KEY", raising=False)
    with pytest.raises(ValueError, match="RP_MISSING_KEY is not set"):
        ChatLabeller(ChatLabellerConfig("http://127.0.0.1:9/v1", "m", "RP_MISSING_KEY"), study.classes).check()
    with pytest.raises(ValueError, match="http"):
        ChatLabeller(ChatLabellerConfig("file:///etc/passwd", "m", ""), study.classes).check()


def test_model_labeller_labels_what_the_model_says(study) -> None:
    # a real linear classifier whose logits are the mean of each colour channel: argmax = the brightest channel
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 3, bias=False))
    with torch.no_grad():
        model[2].weight.copy_(torch.eye(3) * 50.0)
    db = StudyDB(study)
    result = label_study(study, db, "linear", ModelLabeller(model, high_threshold=0.9), versions=("adv", "clean"))
    assert result.n_stored == 2 * len(study.images)
    from PIL import Image

    for a in db.all_answers():
        pixels = torch.tensor(list(Image.open(study.image_path(a.image_id, a.version)).getdata()), dtype=torch.float32)
        means = pixels.mean(0) / 255.0
        probs = torch.softmax(means * 50.0, 0)
        assert a.label == int(means.argmax())
        assert a.confidence == ("high" if float(probs.max()) >= 0.9 else "low")
