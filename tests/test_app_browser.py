"""The app end to end in a real headless Chromium: ``python -m lavis.app`` in its own process with a
tiny trained model; a person uploads a clip, asks two questions, reads the table and the timelines
and clicks a window to play it; uploads a text file named ``.mp4`` and reads the message, then
asks again; two people ask at once. The app's process records every address it looks up or
connects to (an audit hook), and none may be off this machine; when it stops its folder is gone.

``APP_SCREENSHOT=docs/app.png`` also saves the page's screenshot there (the README's picture).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from av_media import make_video

from lavis.datasets.schema import load_annotations

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (run_scripts/setup_browser.sh)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the [dev] extra)")
pytest.importorskip("gradio", reason="the app's extra is not installed: pip install -e '.[app]'")

CHROMIUM_ARGS = [
    "--no-sandbox",  # as root Chromium refuses to start without it
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]
# Runs the app as `python -m lavis.app` does, with an audit hook that writes every socket lookup
# and connection of its process (all threads) to a file, one JSON line each.
AUDITED_APP = """
import json, runpy, sys
log = open(sys.argv.pop(1), "a", buffering=1)
def hook(event, args):
    if event in ("socket.getaddrinfo", "socket.connect"):
        where = args[0] if event == "socket.getaddrinfo" else args[1]
        log.write(json.dumps([event, where if isinstance(where, (str, list, tuple)) else repr(where)]) + "\\n")
sys.addaudithook(hook)
sys.argv[0] = "lavis.app"
runpy.run_module("lavis.app", run_name="__main__", alter_sys=True)
"""
LOCAL = ("127.0.0.1", "localhost", "::1")
QUERIES = ["when is the bright square on screen?", "when is the beep heard?"]


class App:
    """The app in its own process, its output collected by a thread."""

    def __init__(self, run_dir: Path, audit: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [sys.executable, "-c", AUDITED_APP, str(audit), "--run-dir", str(run_dir), "--port", str(self.port)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for key in [k for k in env if k.startswith(("GRADIO_", "HF_HUB_"))]:
            del env[key]  # the app sets its own
        cmd += ["--device", "cpu", "--threads", "1", "--examples", "2"]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_until_serving(self, timeout: float = 180.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any("Running on local URL" in line for line in self.lines):
                return f"http://127.0.0.1:{self.port}/"
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError("the app did not start:\n" + "".join(self.lines[-40:]))

    @property
    def folder(self) -> Path:
        found = [re.search(r"uploads, answers\) are in (\S+),", line) for line in self.lines]
        return Path(next(m for m in found if m).group(1))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def _fill(page, video: Path, queries: str) -> None:
    if page.locator("#player video").count():
        page.click("#player button[aria-label='Clear']")  # as a person replaces the video
    page.set_input_files("#player input[type=file]", str(video))
    page.wait_for_selector("#player video", timeout=30_000)
    page.fill("#queries textarea", queries)


def _ask(page, video: Path, queries: str) -> None:
    _fill(page, video, queries)
    page.click("#ask")


def _status(page, starts: str, timeout: float = 60_000) -> str:
    page.wait_for_function(
        "s => (document.querySelector('#status')?.innerText || '').startsWith(s)", arg=starts, timeout=timeout
    )
    return page.inner_text("#status")


def _answer_to(page, query: str, timeout: float = 60.0) -> None:
    """Wait until the page shows the answer to ``query`` (a page that answered before keeps its
    old answer on screen until the new one arrives)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.inner_text("#status").startswith("Answered") and {r[1] for r in _rows(page)} == {query}:
            return
        time.sleep(0.2)
    raise AssertionError(f"no answer to {query!r}: {page.inner_text('#status')!r}, rows {_rows(page)}")


def _rows(page) -> list[list[str]]:
    rows = page.locator("#windows [role=row]")
    cells = [rows.nth(i).locator("[role=gridcell]") for i in range(rows.count())]
    return [[c.nth(j).inner_text().strip() for j in range(c.count())] for c in cells if c.count()]


def test_a_person_asks_the_app_in_a_browser(answering_run, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", num_frames=80, fps=10.0, square_frames=range(20, 45), tone=(5.0, 7.0))
    fake = tmp_path / "holiday.mp4"
    fake.write_text("this is a text file\n")
    audit = tmp_path / "connections.jsonl"
    app = App(answering_run.run_dir, audit)
    try:
        url = app.wait_until_serving()
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1300})
            page = context.new_page()
            requested: list[str] = []
            context.on("request", lambda request: requested.append(request.url))
            page.goto(url)
            assert "Runs on cpu, 1 thread." in page.inner_text("#model")

            # An example (a test video of the run's data with one of its queries) fills the inputs.
            test_queries = {r.query for r in load_annotations(answering_run.data / "test.jsonl")}
            page.wait_for_selector("#examples tbody tr", timeout=30_000)
            offered = [q for q in test_queries if page.locator("#examples").get_by_text(q, exact=True).count()]
            assert offered, "the run's test videos should be offered as examples"
            page.locator("#examples").get_by_text(offered[0], exact=True).first.click()
            page.wait_for_selector("#player video", timeout=30_000)
            assert page.input_value("#queries textarea") == offered[0]

            # Two queries: the table has each query's windows, the gallery a timeline per query.
            _ask(page, clip, "\n".join(QUERIES))
            assert _status(page, "Answered") == "Answered 2 queries."
            rows = _rows(page)
            assert rows and {r[1] for r in rows} == set(QUERIES), rows
            ranks = [r[2] for r in rows if r[0] == "1"]
            assert ranks == [str(k) for k in range(1, len(ranks) + 1)]  # best first
            sizes = page.eval_on_selector_all(
                "#timelines img", "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])"
            )
            assert sizes == [[1200, 500], [1200, 500]]
            assert "the model wrote" in page.inner_text("#answer") and "Sound" in page.inner_text("#answer")
            assert "the video's index was computed now" in page.inner_text("#answer")
            links = page.eval_on_selector_all("#download a", "links => links.map(a => a.textContent)")
            assert len(links) == 3

            # A click on a window seeks the player to its start.
            page.wait_for_function("document.querySelector('#player video').readyState >= 1")
            row = max(range(len(rows)), key=lambda i: float(rows[i][3]))
            start = float(rows[row][3])
            page.evaluate(
                "t => { const v = document.querySelector('#player video'); v.pause(); v.currentTime = t; }", start + 3.0
            )
            page.locator("#windows [role=row]").nth(row + 1).locator("[role=gridcell]").nth(3).click()
            page.wait_for_function(
                "t => Math.abs(document.querySelector('#player video').currentTime - t) < 0.5",
                arg=start,
                timeout=10_000,
            )
            page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
            if os.environ.get("APP_SCREENSHOT"):
                shutil.copy(tmp_path / "app.png", os.environ["APP_SCREENSHOT"])

            # A text file named .mp4: one message, no path of the server; then a good request.
            _ask(page, fake, QUERIES[0])
            message = _status(page, "Not answered")
            assert message.startswith("Not answered: Could not read holiday.mp4 as a video:"), message
            assert "/" not in message and "Traceback" not in message and _rows(page) == []
            _ask(page, clip, QUERIES[1])
            assert _status(page, "Answered") == "Answered 1 query."
            assert "the video's index was reused from memory" in page.inner_text("#answer")  # uploaded anew

            # Two people at once: each page gets the answer to its own question.
            other = context.new_page()
            other.goto(url)
            asks = [(page, "when does it go dark?"), (other, "when is the square shown?")]
            for p, query in asks:
                _fill(p, clip, query)
            for p, _ in asks:
                p.click("#ask")
            for p, query in asks:
                _answer_to(p, query)
            browser.close()
        assert requested and all(
            r.startswith(url) or r.startswith("blob:") or r.startswith("data:") for r in requested
        ), [r for r in requested if not r.startswith(url)]
    finally:
        code = app.stop()
    assert code == 0, "".join(app.lines[-30:])
    assert "Traceback" not in "".join(app.lines)
    assert not app.folder.exists()  # uploads and answers deleted with the app
    seen = [json.loads(line) for line in audit.read_text().splitlines()]
    hosts = {where if event.endswith("getaddrinfo") else where[0] for event, where in seen if where is not None}
    hosts -= {where for event, where in seen if event.endswith("connect") and isinstance(where, str)}  # Unix sockets
    assert hosts and hosts <= set(LOCAL), hosts
