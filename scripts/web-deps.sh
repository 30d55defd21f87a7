#!/usr/bin/env bash
# Installs what the web client's tests need: Debian's Chromium (Playwright cannot download its
# own browser here), a colour emoji font, and the npm packages pinned in web/package-lock.json
# (playwright-core, axe-core). Debian packages are installed only when missing; a failure stops
# the test run.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || { echo "node is required for the web client tests" >&2; exit 1; }

# Chromium, and a colour emoji font so that emoji in screenshots are not empty boxes.
chromium="${CHROMIUM:-/usr/bin/chromium}"
missing=()
[ -x "$chromium" ] || missing+=(chromium)
[ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian's ${missing[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
"$chromium" --version 2>/dev/null

# Exactly the versions in web/package-lock.json (two packages; a few seconds from npm's cache).
(cd web && npm ci --no-audit --no-fund --loglevel=error)
