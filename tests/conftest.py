import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

CORPORA = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora"


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


# Folders whose conftest.py trains or exports a model once per session: with pytest-xdist (`-n 2`, the
# default command's) all their tests go to one worker, so that work is done once, not once per worker.
# (finetuning's session fixture serves slow tests only; checkpoints' are cheap: their files spread.)
SHARED_SESSION_FIXTURES = ("export", "illustrate")


def pytest_collection_modifyitems(config, items):
    tests = Path(__file__).resolve().parent
    for item in items:
        # [xdist --dist loadgroup] one group per test file (module fixtures are built once), one per folder above.
        relative = Path(str(item.path)).resolve().relative_to(tests)
        group = relative.parts[0] if relative.parts[0] in SHARED_SESSION_FIXTURES else str(relative)
        item.add_marker(pytest.mark.xdist_group(group))
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def corpora():
    """The shared real-text corpora (../shared/corpora beside the repository)."""
    if not CORPORA.is_dir():
        pytest.skip(f"shared corpora not found at {CORPORA}")
    return CORPORA
