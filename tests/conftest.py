"""Shared pytest fixtures (keep this file small; one fixture per shared need)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Written by ``bash .ci/postgres.sh`` (a throwaway server on 127.0.0.1).
POSTGRES_URL_FILE = ROOT / ".ci" / "postgres.url"


def _postgres_url() -> tuple[str | None, str]:
    """The test server's URL and, when there is none, why."""
    url = os.environ.get("NASNTK_TEST_POSTGRES_URL", "").strip()
    if not url and POSTGRES_URL_FILE.is_file():
        url = POSTGRES_URL_FILE.read_text().strip()
    if not url:
        return None, (
            "no PostgreSQL server: run `bash .ci/postgres.sh` (writes .ci/postgres.url) or set "
            "NASNTK_TEST_POSTGRES_URL=postgresql://USER:PASS@HOST:PORT/DB"
        )
    try:
        import psycopg
    except ImportError:
        return None, "psycopg (3) is not installed (pip install -e '.[test]')"
    try:
        psycopg.connect(libpq_dsn(url), connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "connection failed"
        return None, f"PostgreSQL server of {POSTGRES_URL_FILE.name} is not reachable: {first}"
    return url, ""


def libpq_dsn(url: str) -> str:
    """A SQLAlchemy ``postgresql+driver://`` URL as libpq takes it (no ``+driver``)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A fresh SQLite storage URL."""
    return f"sqlite:///{tmp_path / 'study.db'}"


@pytest.fixture
def build_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each real (non-meta) build of a toy network appends a line here (``TOY_SPACE_LOG``)."""
    path = tmp_path / "builds.log"
    monkeypatch.setenv("TOY_SPACE_LOG", str(path))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a live PostgreSQL database for tests marked ``postgres``; skips when there is none.

    Set ``NASNTK_REQUIRE_POSTGRES=1`` (CI does) to fail instead of skipping.
    """
    url, why = _postgres_url()
    if url is None:
        if os.environ.get("NASNTK_REQUIRE_POSTGRES"):
            pytest.fail(why)
        pytest.skip(why)
    return url
