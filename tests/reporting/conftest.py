"""The scaling tests' tiny GPT-2 set-up, shared (tests/scale/conftest.py)."""
from tests.scale.conftest import REPO, SHARED, TINY, TINY_DATA, TINY_MODEL, read_jsonl, run, tiny, train_cmd  # noqa: F401
