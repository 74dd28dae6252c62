import pytest

from hostile.context import make_ctx


@pytest.fixture
def ctx(tiny_run, tmp_path):
    """A copy of the tiny trained run, its data and a scratch folder (``hostile.context.Ctx``)."""
    context = make_ctx(tiny_run, tmp_path)
    yield context
    if getattr(context, "lock", None):
        context.lock.release()
