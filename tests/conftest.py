import os
import sys
import pathlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(pathlib.Path(__file__).parent))  # test helpers (iemocap_fixture, ...)

import pytest

from iemocap_fixture import make_iemocap_tree


@pytest.fixture(scope="session")
def iemocap_tree(tmp_path_factory):
    """A small IEMOCAP_full_release tree with every quirk (made once per test session)."""
    return make_iemocap_tree(tmp_path_factory.mktemp("iemocap"))
