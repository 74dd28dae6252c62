"""What the tables of hostile inputs share: the context a case builds its command line from (a
copy of the tiny trained run, its data, a scratch folder), the files it writes, and the check
that a run ended clean (exit status 2 and one ``error:`` line with the expected text, no
traceback)."""

import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from helpers.tiny_run import EXPERIMENT

from lavis.runners.run_lock import RunLock

NOT_UTF8 = b'{"qid": 1, "query": "caf\xe9", "vid": "v"}\n'


@dataclass
class Ctx:
    tmp: Path
    run: Path  # a copy of the tiny trained run (config.yaml, checkpoints, preds_*.jsonl)
    data: Path  # its synthetic dataset

    def train(self, *options: str, out: Path | None = None) -> list[str]:
        base = [
            f"datasets.synthetic_av.root={self.data}",
            f"run.output_dir={out or self.tmp / 'new'}",
            "run.max_iters=1",
            "run.batch_size_train=2",
            "run.batch_size_eval=4",
            "run.num_workers=0",
            "run.torch_threads=null",
            "datasets.synthetic_av.num_frames=6",
            "model.generation.num_beams=2",
            "model.generation.max_new_tokens=8",
        ]
        return ["--cfg-path", EXPERIMENT, "--options", *base, *options]

    def resume(self, *options: str) -> list[str]:
        root = f"datasets.synthetic_av.root={self.data}"  # the run's is relative to where it trained
        return ["--cfg-path", str(self.run / "config.yaml"), "--options", f"run.output_dir={self.run}", root, *options]

    def file(self, name: str, content: bytes | str, folder: Path | None = None) -> Path:
        path = (folder or self.tmp) / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return path


def flipped(ctx: Ctx) -> Path:
    path = next(ctx.run.glob("checkpoint_step*.pt"))
    data = bytearray(path.read_bytes())
    rng = random.Random(0)
    for _ in range(16):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return path


def data_with(ctx: Ctx, name: str, content: bytes) -> Path:
    """The synthetic dataset with its train annotations replaced."""
    copy = ctx.tmp / "data"
    copy.mkdir()
    for item in ctx.data.iterdir():
        (copy / item.name).symlink_to(item)
    (copy / "train.jsonl").unlink()
    (copy / "train.jsonl").write_bytes(content)
    return copy


def locked(ctx: Ctx) -> list[str]:
    lock = RunLock(ctx.tmp / "busy")
    lock.acquire()  # held until the test ends: another run is using the folder
    ctx.lock = lock
    return ctx.train(out=ctx.tmp / "busy")


Case = tuple[str, Callable, Callable[[Ctx], list[str]], str]  # name, main, argv(ctx), text of the error


def make_ctx(tiny_run, tmp_path: Path) -> Ctx:
    """A context over a fresh copy of the tiny run (its lock left behind)."""
    run = tmp_path / "runs" / "run"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns(".lock"))
    return Ctx(tmp_path, run, tiny_run.data)


def assert_one_error_line(code: int, err: str, message: str) -> None:
    """Exit status 2, exactly one ``error:`` line, holding ``message``, and no traceback."""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err[-3000:]
    assert len(errors) == 1 and message in errors[0], err[-3000:]
    assert "Traceback" not in err


def data_with_video(ctx: Ctx, vid: str, make: Callable[[Path], Path], folder: str = "data2") -> Path:
    """The synthetic dataset with the video of ``vid`` replaced by ``make(path)`` (other files linked)."""
    copy = ctx.tmp / folder
    (copy / "videos").mkdir(parents=True)
    for item in ctx.data.iterdir():
        if item.name != "videos":
            (copy / item.name).symlink_to(item)
    for video in (ctx.data / "videos").iterdir():
        if video.stem != vid:
            (copy / "videos" / video.name).symlink_to(video)
    make(copy / "videos" / f"{vid}.mp4")
    return copy


def train_records(ctx: Ctx) -> list[dict]:
    """The tiny dataset's training records, as JSON objects."""
    return [json.loads(line) for line in (ctx.data / "train.jsonl").read_text().splitlines()]


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def exported(ctx: Ctx, name: str = "export") -> Path:
    """The tiny run exported (``lavis.export``) to ``ctx.tmp / name``."""
    from lavis.export import export_run

    return export_run(ctx.run, ctx.tmp / name)


def disk_full(monkeypatch, full: Callable[[str], bool]) -> None:
    """Writes of the project's file helpers (``common.files``: atomic writes, appends, new files)
    and of ``metrics.jsonl`` go to ``/dev/full`` for the paths where ``full(path)`` is true: the
    kernel's own ENOSPC, as on a full disk."""
    import os as real_os
    import stat

    import pytest

    from lavis.common import files
    from lavis.runners import log_hooks

    if not real_os.path.exists("/dev/full") or not stat.S_ISCHR(real_os.stat("/dev/full").st_mode):
        pytest.skip("no /dev/full device here")

    def open_(path, mode="r", *args, **kwargs):
        if ("w" in mode or "a" in mode) and full(str(path)):  # never creates /dev/full (no O_CREAT)
            return open(real_os.open("/dev/full", real_os.O_WRONLY), mode.replace("a", "w"), *args, **kwargs)
        return open(path, mode, *args, **kwargs)

    class OsOnFullDisk:
        def __getattr__(self, name):
            return getattr(real_os, name)

        def open(self, path, flags, *args):
            if flags & (real_os.O_WRONLY | real_os.O_RDWR) and full(str(path)):
                return real_os.open("/dev/full", real_os.O_WRONLY)
            return real_os.open(path, flags, *args)

    monkeypatch.setattr(files, "open", open_, raising=False)
    monkeypatch.setattr(files, "os", OsOnFullDisk())
    monkeypatch.setattr(log_hooks, "open", open_, raising=False)
