"""A real browser: headless Chromium labels a batch with clicks and keys, reloads mid-batch, resumes.

Needs Debian's chromium and chromium-driver (`apt-get install chromium chromium-driver`) and selenium;
skips with the reason otherwise.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from robustperf.human.app import build_app
from robustperf.human.db import StudyDB

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
                                       "chromium-driver)")  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(study):
    import uvicorn

    db = StudyDB(study)
    token = db.invite("alice")
    port = _free_port()
    app = build_app(study, db, public_origin=f"http://127.0.0.1:{port}")  # the browser's Origin on every POST
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", token, db
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path: Path):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):  # fmt: skip
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_label_a_batch_with_clicks_and_keys_reload_and_resume(server, browser, study) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, token, db = server
    wait = WebDriverWait(browser, 30)
    browser.get(f"{base}/l/{token}")
    wait.until(ec.element_to_be_clickable((By.ID, "batch-0"))).click()

    def current() -> tuple[str, str, str]:
        wait.until(ec.presence_of_element_located((By.ID, "answer-form")))
        get = lambda name: browser.find_element(By.NAME, name).get_attribute("value")  # noqa: E731
        return get("image_id"), get("version"), browser.find_element(By.ID, "progress").text

    given: dict[tuple[str, str], tuple[int, str]] = {}

    def by_click(label: int, confidence: str) -> None:
        image_id, version, _ = current()
        old = browser.find_element(By.ID, "stimulus")
        browser.find_element(By.ID, f"class-{label}").click()
        browser.find_element(By.ID, confidence).click()
        given[(image_id, version)] = (label, confidence)
        wait.until(ec.staleness_of(old))

    def by_keys(label: int, confidence: str) -> None:
        image_id, version, _ = current()
        old = browser.find_element(By.ID, "stimulus")
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(str(label))
        body.send_keys(confidence[0])  # "l" or "h"
        given[(image_id, version)] = (label, confidence)
        wait.until(ec.staleness_of(old))

    first_id, version, progress = current()
    assert (version, progress) == ("adv", "1 / 4")
    img = browser.find_element(By.ID, "stimulus")
    assert browser.execute_script("return [arguments[0].clientWidth, arguments[0].clientHeight]", img) == [256, 256]
    assert browser.execute_script("return arguments[0].naturalWidth", img) == 8
    by_click(2, "high")
    by_keys(1, "low")
    assert current()[2] == "3 / 4"
    browser.refresh()  # reload mid-batch: resumes at the third image
    assert current()[2] == "3 / 4"
    by_keys(0, "high")
    by_click(1, "low")
    image_id, version, progress = current()
    assert (image_id, version, progress) == (first_id, "clean", "1 / 4")  # the clean versions come after
    by_keys(2, "high")
    browser.get(f"{base}/")  # leave and come back through the batch list
    wait.until(ec.element_to_be_clickable((By.ID, "batch-0"))).click()
    assert current()[1:] == ("clean", "2 / 4")
    by_click(0, "high")
    by_keys(2, "low")
    by_keys(1, "high")
    wait.until(ec.presence_of_element_located((By.ID, "done")))
    stored = {(a.image_id, a.version): (a.label, a.confidence) for a in db.all_answers()}
    assert stored == given and len(stored) == 8
    assert {im for im, _ in stored} == {im.id for im in study.batch(0)}
