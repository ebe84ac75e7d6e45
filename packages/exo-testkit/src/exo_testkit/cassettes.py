"""The one vcrpy policy for every package's cassettes: recorded against a lab zone, replayed
offline, never carrying a credential."""

from __future__ import annotations

import re
from pathlib import Path

import vcr

# Host and port change with every recording (the zone listens on a free port), so a request
# is identified by what it asks: method, path, query (filters) and body (scale sizes).
MATCH_ON = ("method", "path", "query", "body")


def cassette_vcr(library: Path, record_mode: str, match_on: tuple[str, ...] = MATCH_ON) -> vcr.VCR:
    return vcr.VCR(
        cassette_library_dir=str(library),
        record_mode=record_mode,
        match_on=list(match_on),
        filter_headers=["authorization"],
        decode_compressed_response=True,
    )


_CREDENTIAL_PATTERNS = (
    re.compile(r"EXO2-HMAC"),
    re.compile(r"(?im)^\s*authorization:"),
    re.compile(r"EXO[0-9a-f]{24}"),
)


def credentials_in(library: Path) -> list[str]:
    """`file: pattern` for every cassette that carries something like a credential."""
    found = []
    for path in sorted(library.glob("*.yaml")):
        text = path.read_text()
        found += [f"{path.name}: {p.pattern}" for p in _CREDENTIAL_PATTERNS if p.search(text)]
    return found
