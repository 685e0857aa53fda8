"""docs/spec/ holds the binding protocol (PROTOCOL.md), the merchant contract (API.md) and the vectors, so that
a clone alone runs `make test`; each copy stays byte-identical to ../shared/ when ../shared/ is present."""

from __future__ import annotations

import pytest
from helpers import SHARED, SPEC


def spec_files() -> list[str]:
    return sorted(
        path.relative_to(SPEC).as_posix() for path in SPEC.rglob("*") if path.is_file() and path.name != "interfaces.md"
    )


def test_the_copies_are_in_the_repository() -> None:
    names = spec_files()
    assert {"PROTOCOL.md", "API.md", "protocol/vectors.json", "protocol/profiles.json"} <= set(names)
    assert any(name.startswith("protocol/test-keys/") for name in names)


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/ is not beside this clone: the copies are the source")
@pytest.mark.parametrize("name", spec_files())
def test_each_copy_is_byte_identical_to_shared(name: str) -> None:
    assert (SPEC / name).read_bytes() == (SHARED / name).read_bytes(), f"docs/spec/{name} drifted from ../shared/"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/ is not beside this clone")
def test_nothing_of_shared_is_missing_from_the_copies() -> None:
    wanted = {"PROTOCOL.md", "API.md"} | {
        path.relative_to(SHARED).as_posix() for path in (SHARED / "protocol").rglob("*") if path.is_file()
    }
    assert wanted <= set(spec_files()), sorted(wanted - set(spec_files()))
