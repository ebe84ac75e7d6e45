"""One vcrpy configuration for recording and replay."""

from __future__ import annotations

from pathlib import Path

import vcr

CASSETTES = Path(__file__).parent / "cassettes"
IDS_FILE = CASSETTES / "ids.json"
# Host and port differ between recordings (the zone listens on a free port); the API
# conversation is identified by method, path, query and body.
MATCH_ON = ["method", "path", "query", "body"]


def make_vcr(record_mode: str) -> vcr.VCR:
    return vcr.VCR(
        cassette_library_dir=str(CASSETTES),
        record_mode=record_mode,
        match_on=MATCH_ON,
        filter_headers=["authorization"],
        decode_compressed_response=True,
    )
