"""Ask a trained run about your videos in the browser.

    python -m lavis.app --run-dir checkpoints/runs/demo          # or lavis-app; then open the URL it prints
    python -m lavis.app --run-dir RUN --host 0.0.0.0 --port 8080   # reachable from other machines

Needs the ``[app]`` extra (``pip install -e ".[app]"``). It binds 127.0.0.1 unless ``--host``
says otherwise and never reaches the network (``lavis.app.server``).
Exit status: 0 after Ctrl-C; 2 for a bad argument or run (one line on stderr).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import torch

from lavis.common.cli import cli_errors
from lavis.common.errors import InputError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lavis.app", description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", required=True, help="a trained run's folder or a lavis.export folder")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, help="port (default: the first free one from 7860)")
    p.add_argument("--max-seconds", type=float, default=600.0, help="longest video answered, seconds (600)")
    p.add_argument("--max-upload-mb", type=int, default=500, help="largest upload, MB (500)")
    p.add_argument("--queue-size", type=int, default=8, help="requests that may wait for the model (8)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: the cores, up to 4)")
    p.add_argument(
        "--index-dir", type=Path, help="keep the video index here across restarts (default: the app's temp folder)"
    )
    p.add_argument("--examples", type=int, default=4, help="test videos of the run offered as examples (4)")
    return p


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """``python -m lavis.app``: serve the page that answers queries about a video with a run's model
    until Ctrl-C; the flags and exit statuses are the module docstring's."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.max_seconds <= 0 or args.max_upload_mb <= 0 or args.queue_size < 1 or (args.threads or 1) < 1:
        raise InputError("--max-seconds, --max-upload-mb, --queue-size and --threads must be positive")
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise InputError(f"no run at {run_dir}: train one (bash run_scripts/demo.sh) or pass --run-dir")
    if importlib.util.find_spec("gradio") is None:  # not imported here: its environment comes first
        raise InputError('the app needs Gradio: pip install -e ".[app]"')
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(args.threads or min(cores, 4))

    from lavis.app.server import AppSettings, serve

    settings = AppSettings(
        run_dir=run_dir,
        device=args.device,
        host=args.host,
        port=args.port,
        max_seconds=args.max_seconds,
        max_upload_mb=args.max_upload_mb,
        queue_size=args.queue_size,
        index_dir=args.index_dir,
        examples=args.examples,
    )
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
