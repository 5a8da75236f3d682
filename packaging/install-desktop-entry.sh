#!/bin/sh
# Install meterdesk's launcher and icon for the current user (freedesktop menus: GNOME, KDE, Xfce, ...).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
install -D -m 644 "$here/resources/meterdesk.desktop" "$data/applications/meterdesk.desktop"
install -D -m 644 "$here/resources/meterdesk.svg" "$data/icons/hicolor/scalable/apps/meterdesk.svg"
install -D -m 644 "$here/resources/meterdesk.png" "$data/icons/hicolor/256x256/apps/meterdesk.png"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
command -v meterdesk >/dev/null 2>&1 || echo "note: put the meterdesk command on PATH (e.g. pipx install $here) for the launcher to work" >&2
echo "installed: $data/applications/meterdesk.desktop"
