"""The app's API through ``gradio_client``, without a browser: the page's function answers over HTTP,
two clients at once each get their own answer, a bad upload is a message, files are served from
the app's own folder only, and nothing connects anywhere but this machine."""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from av_media import make_video

pytest.importorskip("gradio_client", reason="the app's extra is not installed: pip install -e '.[app]'")
import httpx  # noqa: E402 - a dependency of gradio_client
from gradio_client import Client, handle_file  # noqa: E402

from lavis.app.server import AppSettings, create_app, gradio_environment, make_temp_root  # noqa: E402


class Connections:
    """Every address a socket of this process connects to or looks up while ``on`` (an audit hook:
    it sees Gradio's threads and the client's too)."""

    def __init__(self) -> None:
        self.on, self.seen, self.lock = False, [], threading.Lock()
        sys.addaudithook(self._hook)  # hooks cannot be removed: it records only while on

    def _hook(self, event: str, args: tuple) -> None:
        if self.on and event in ("socket.connect", "socket.getaddrinfo"):
            with self.lock:
                self.seen.append((event, args[1] if event == "socket.connect" else args[0]))

    def remote(self) -> list:
        """What was not this machine (a loopback address or ``localhost``)."""
        found = []
        for event, where in self.seen:
            host = where[0] if isinstance(where, tuple) else where
            if isinstance(host, bytes):
                host = host.decode()
            if host in ("localhost", None) or (isinstance(where, str) and event == "socket.connect"):
                continue  # a name for this machine, or a Unix socket
            try:
                local = ipaddress.ip_address(host).is_loopback
            except ValueError:
                local = False
            if not local:
                found.append((event, where))
        return found


@pytest.fixture(scope="module")
def app(answering_run):
    connections = Connections()
    connections.on = True
    root = make_temp_root()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in gradio_environment(root).items():
            patch.setenv(key, value)
        # The app's process sets HF_HUB_OFFLINE before huggingface_hub is imported (which reads it
        # then); in this process pytest imported it first (test_app_browser checks the real one).
        patch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
        settings = AppSettings(run_dir=answering_run.run_dir, device="cpu", queue_size=3, examples=0)
        page, launch = create_app(settings, root)
        launch.update(server_port=_free_port(), prevent_thread_lock=True, quiet=True)
        page.launch(**launch)
        try:
            yield page, root, connections
        finally:
            page.close()
            connections.on = False
            shutil.rmtree(root, ignore_errors=True)  # what lavis.app.server.serve does when it stops


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client(app, tmp_path_factory):
    page = app[0]
    return Client(page.local_url, verbose=False, analytics_enabled=False, download_files=tmp_path_factory.mktemp("dl"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=80, fps=10.0, tone=(5.0, 7.0))


def test_the_api_answers_like_the_page(client, clip, app):
    status, table, text, timelines, files = client.predict(
        handle_file(clip), "when is the beep heard?\nwhen is the square shown?", api_name="/answer"
    )
    assert status == "**Answered** 2 queries."
    assert table["headers"] == ["#", "query", "rank", "start (s)", "end (s)", "score"]
    assert {row[1] for row in table["data"]} == {"when is the beep heard?", "when is the square shown?"}
    assert "1. *when is the beep heard?*: the model wrote" in text and "**Time**:" in text
    assert [item["caption"] for item in timelines] == ["1. when is the beep heard?", "2. when is the square shown?"]
    names = [Path(f).name for f in files]
    assert names == ["clip_q0.json", "clip_q1.json", "predictions.jsonl"]
    first = json.loads(Path(files[0]).read_text())
    assert first["video"] == "clip.mp4" and first["query"] == "when is the beep heard?"
    assert [[w[0], w[1]] for w in first["windows"]] == [[r[3], r[4]] for r in table["data"] if r[0] == 1]
    uploads = list((app[1] / "gradio").rglob("clip.mp4"))
    assert uploads, "the upload should be kept in the app's own folder (GRADIO_TEMP_DIR)"


def test_a_bad_upload_is_a_message_and_the_next_request_is_answered(client, clip, tmp_path):
    fake = tmp_path / "holiday.mp4"
    fake.write_text("not a video at all\n")
    status, table, text, timelines, files = client.predict(handle_file(fake), "a dog barks", api_name="/answer")
    assert status.startswith("**Not answered**: Could not read holiday\\.mp4 as a video: cannot open")
    assert str(tmp_path) not in status and "/tmp" not in status and "Traceback" not in status
    assert table["data"] == [] and timelines == [] and files is None
    status, *_ = client.predict(handle_file(clip), "a dog barks", api_name="/answer")
    assert status == "**Answered** 1 query."


def test_two_clients_at_once_each_get_their_own_answer(client, clip, app, tmp_path):
    other = Client(app[0].local_url, verbose=False, analytics_enabled=False, download_files=tmp_path)
    with ThreadPoolExecutor(2) as pool:
        jobs = [
            pool.submit(c.predict, handle_file(clip), query, api_name="/answer")
            for c, query in ((client, "when is the beep heard?"), (other, "when does it go dark?"))
        ]
        answers = [job.result(timeout=120) for job in jobs]
    for (status, table, *_), query in zip(answers, ("when is the beep heard?", "when does it go dark?")):
        assert status == "**Answered** 1 query." and {row[1] for row in table["data"]} == {query}
    assert app[0]._queue.max_size == 3  # the bound on requests waiting for the model
    from lavis.app.page import CACHE_CLEANING  # imported by the fixture, after Gradio's environment

    assert app[0].delete_cache == CACHE_CLEANING  # old uploads and answers go while it runs


def test_only_the_apps_own_files_are_served_and_nothing_leaves_the_machine(app, client, clip, answering_run):
    page, root, connections = app
    _, _, _, _, files = client.predict(handle_file(clip), "when is the beep heard?", api_name="/answer")
    served = next((root / "gradio" / "answers").rglob("predictions.jsonl"))
    base = f"{page.local_url}gradio_api/file="
    assert httpx.get(base + str(served)).status_code == 200
    for outside in (answering_run.run_dir / "config.yaml", Path("/etc/passwd"), Path(__file__)):
        assert httpx.get(base + str(outside)).status_code == 403, outside
    for remote in ("https://example.com/a.mp4", "http%3A//example.com/a.mp4"):
        assert httpx.get(base + remote).status_code == 403
    assert httpx.get(f"{page.local_url}gradio_api/proxy=https://example.com/x").status_code == 403
    assert page.server_name == "127.0.0.1" and page.share is False
    assert connections.seen and connections.remote() == []
