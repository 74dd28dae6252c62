from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real Charades-STA / QVHighlights annotation files; tests skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real annotation files not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny SMS trained for two steps on synthetic videos (see tests/helpers/tiny_run.py)."""
    from helpers.tiny_run import train_tiny_run

    base = tmp_path_factory.mktemp("tiny_run")
    return train_tiny_run(base / "data", base / "run")


@pytest.fixture(scope="session")
def answering_run(tiny_run, tmp_path_factory):
    """The tiny SMS trained twelve steps on the same videos (~20 s): enough for it to write
    windows (two per query, the duration prior) where the two-step run writes none."""
    from helpers.tiny_run import train_on

    steps = ("run.max_iters=12", "run.max_epoch=100", "run.batch_size_train=4", "run.init_lr=3e-3")
    return train_on(tiny_run.data, tmp_path_factory.mktemp("answering_run") / "run", steps)


@pytest.fixture
def one_thread():
    """Tiny ops on a shared 2-core machine: one torch thread avoids oversubscription (~10x faster)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
