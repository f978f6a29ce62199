#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the distributed-search test (issue 6).
# Exports nothing: writes the URL to .ci/postgres.url, which tests/conftest.py reads.
echo "postgres: not set up yet" >&2
exit 1
