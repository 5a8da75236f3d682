#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine and runs the whole suite.
#
#   bash tools/test.sh [pytest arguments]
#
# As root it installs the system packages first (Qt's runtime libraries, fonts, Xvfb, the PostgreSQL
# server); as another user it only says which are missing. The suite starts its own throwaway
# PostgreSQL cluster unless METERDESK_TEST_PG names a server to use.
set -euo pipefail
cd "$(dirname "$0")/.."

system_packages=(
    libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0
    libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0
    libxcb-xinerama0 libxcb-randr0 libxcb-xkb1 fonts-dejavu-core xvfb
)
missing=()
for pkg in "${system_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ -z "${METERDESK_TEST_PG:-}" ]; then
    missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing system packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "warning: missing system packages (run as root to install them): ${missing[*]}" >&2
    fi
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$python" -m venv .venv
fi
echo "==> installing meterdesk with its test extra"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

export QT_QPA_PLATFORM=offscreen
echo "==> running the test suite"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "error: pytest collected no tests; a run that tests nothing is not a pass" >&2
    exit 1
fi
exit "$status"
