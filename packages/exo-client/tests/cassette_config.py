"""Where exo-client's cassettes live; the recording policy is exo-testkit's."""

from __future__ import annotations

from pathlib import Path

import vcr

from exo_testkit import cassette_vcr

CASSETTES = Path(__file__).parent / "cassettes"
IDS_FILE = CASSETTES / "ids.json"


def make_vcr(record_mode: str) -> vcr.VCR:
    return cassette_vcr(CASSETTES, record_mode)
