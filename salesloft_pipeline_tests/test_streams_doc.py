"""README's stream table says what the registry does: every stream, its endpoint, mode and scope."""

from __future__ import annotations

import re
from pathlib import Path

from salesloft_pipeline.salesloft import STREAMS

README = Path(__file__).resolve().parents[1] / "README.md"


def table_rows() -> dict[str, tuple[str, str, str]]:
    rows = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[a-z_]+`", cells[0]) and cells[1].startswith("`"):
            rows[cells[0].strip("`")] = (cells[1].strip("`"), cells[2], cells[3].strip("`"))
    return rows


def test_every_stream_is_in_the_readme_table_as_the_registry_has_it() -> None:
    rows = table_rows()
    assert list(rows) == [s.name for s in STREAMS]
    for stream in STREAMS:
        path, mode, scope = rows[stream.name]
        assert path == stream.path, stream.name
        assert mode == ("incremental (`updated_at`)" if stream.incremental else "full refresh"), stream.name
        assert scope == (stream.required_scope or "—"), stream.name
    assert f"{len(STREAMS)} streams, one asset each" in README.read_text()


def test_the_registry_is_at_least_as_wide_as_the_widest_open_connector() -> None:
    assert len(STREAMS) >= 53
    assert len({s.name for s in STREAMS}) == len(STREAMS)
