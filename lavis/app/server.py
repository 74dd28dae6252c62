"""The app's server: its settings, the environment Gradio must see before it is imported, the model
behind the page, and how the page is served.

Nothing here reaches the network: Gradio's telemetry and version check are off
(``GRADIO_ANALYTICS_ENABLED=False`` before ``import gradio``: without it Gradio starts threads
that look up its version and send telemetry), no share link, no run history (it can connect a
hub bucket), no monitoring, no server-side rendering, the default theme with local fonts only,
and the routes through which Gradio fetches a URL for a client (``/file=<url>``, ``/proxy=``)
answer 403. The server binds 127.0.0.1 unless told otherwise. Uploads, examples and answers live
in one temporary folder of the app (``GRADIO_TEMP_DIR``), the only folder it serves; old files
are deleted while it runs (``delete_cache``) and the whole folder when it stops.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import unquote

logger = logging.getLogger(__name__)

REMOTE_FETCH = re.compile(r"/(?:file=[a-z][a-z0-9+.-]*:|proxy=)", re.IGNORECASE)


@dataclass
class AppSettings:
    """What ``python -m lavis.app`` was asked for (its flags)."""

    run_dir: Path
    device: str = "auto"
    host: str = "127.0.0.1"
    port: Optional[int] = None  # None: Gradio's first free port from 7860
    max_seconds: float = 600.0  # the longest video answered
    max_upload_mb: int = 500
    queue_size: int = 8  # requests waiting for the model; more are refused with a message
    index_dir: Optional[Path] = None  # None: inside the app's temporary folder
    examples: int = 4


def gradio_environment(root: Path) -> dict[str, str]:
    """The environment variables Gradio reads at import and page build: no telemetry, and every
    file it keeps (uploads, answers, example copies) under ``root``."""
    return {
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(root / "gradio"),
        "GRADIO_EXAMPLES_CACHE": str(root / "gradio" / "examples"),
        "HF_HUB_OFFLINE": "1",  # Gradio imports huggingface_hub; the model loads from local files
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def make_temp_root() -> Path:
    """A new temporary folder for one app's files (``gradio_environment``)."""
    return Path(tempfile.mkdtemp(prefix="lavis-app-"))


class NoRemoteFetch:
    """ASGI middleware: 403 for the routes through which Gradio would fetch a URL on a client's
    behalf (``/gradio_api/file=https://...``, ``/gradio_api/proxy=...``); the app serves files only."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Refuse a remote fetch; pass everything else on."""
        if scope["type"] == "http" and REMOTE_FETCH.search(unquote(scope.get("path", ""))):
            from starlette.responses import PlainTextResponse

            await PlainTextResponse("This app serves its own files only.", status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(settings: AppSettings, root: Path) -> tuple[Any, dict[str, Any]]:
    """The page (queued, bounded) and the keyword arguments of its ``launch``, for an app whose
    files live in ``root``. Gradio must see ``gradio_environment(root)`` before this is called."""
    from starlette.middleware import Middleware

    from lavis.app.answer import Answerer
    from lavis.app.examples import run_examples
    from lavis.app.page import PAGE_CSS, build_page
    from lavis.app.present import model_facts
    from lavis.inference.predictor import load_model

    uploads = root / "gradio"
    if os.environ.get("GRADIO_TEMP_DIR") != str(uploads):  # answers must go where Gradio serves from
        raise RuntimeError(f"set gradio_environment({root}) before create_app")
    index_dir = settings.index_dir or root / "index"
    predictor = load_model(settings.run_dir, device=settings.device, index_dir=index_dir)
    examples = run_examples(settings.run_dir, settings.examples) if settings.examples > 0 else []
    answerer = Answerer(predictor, uploads / "answers", settings.max_seconds)
    page = build_page(answerer, model_facts(predictor), examples)
    page.queue(max_size=settings.queue_size, default_concurrency_limit=1)
    launch = {
        "server_name": settings.host,
        "server_port": settings.port,
        "share": False,
        "max_file_size": f"{settings.max_upload_mb}mb",
        "allowed_paths": [],
        "show_error": False,
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "enable_monitoring": False,
        "run_history": False,
        "footer_links": ["api"],
        "css": PAGE_CSS,
        "app_kwargs": {"middleware": [Middleware(NoRemoteFetch)]},
    }
    return page, launch


def _stop(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # Gradio's launch closes the server on it; then the folder goes


def serve(settings: AppSettings) -> None:
    """Run the app until Ctrl-C (or SIGTERM), then delete its temporary folder. Call it before
    anything imports Gradio or huggingface_hub: both read the environment it sets at import."""
    root = make_temp_root()
    os.environ.update(gradio_environment(root))
    signal.signal(signal.SIGTERM, _stop)
    try:
        page, launch = create_app(settings, root)
        logger.info("the app's files (uploads, answers) are in %s, deleted when it stops", root)
        page.launch(**launch)
    finally:
        shutil.rmtree(root, ignore_errors=True)
