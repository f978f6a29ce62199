#!/usr/bin/env bash
# A headless browser for the HTML report test (issue 15): Debian's chromium, installed with
# apt-get when missing and we are root. Prints the browser's path; fails when none can be had.
set -euo pipefail
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        exit 0
    fi
done
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "browser: installing chromium with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null 2>&1 || {
        apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null
    }
    command -v chromium
    exit 0
fi
echo "browser: no chromium and cannot install one (not root or no apt-get)" >&2
exit 1
