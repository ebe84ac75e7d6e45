from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from sd_cassettes import IDS_FILE


@pytest.fixture(scope="session")
def recorded_ids() -> dict[str, dict[str, str]]:
    return dict(json.loads(IDS_FILE.read_text()))
