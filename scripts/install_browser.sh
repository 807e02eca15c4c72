#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver packages for the browser tests in tests/ui.
# Safe to rerun: it does nothing when /usr/bin/chromium and /usr/bin/chromedriver exist.
# Needs apt-get, and root or sudo. The tests use these two paths and never download a
# browser or driver themselves.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver
PACKAGES=(chromium chromium-driver)

if [ -x "$CHROMIUM" ] && [ -x "$CHROMEDRIVER" ]; then
  echo "install_browser: $CHROMIUM and $CHROMEDRIVER are already installed"
  exit 0
fi

fail() {
  echo "error: $1" >&2
  echo "install_browser: install the Debian packages ${PACKAGES[*]} by hand, or run the" \
    "tests without the browser checks (they skip when CI is not set)" >&2
  exit 1
}

if ! command -v apt-get >/dev/null 2>&1; then
  fail "apt-get not found: this script installs Debian's ${PACKAGES[*]} packages only"
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  fail "installing ${PACKAGES[*]} needs root, and sudo is not installed"
fi

echo "install_browser: installing ${PACKAGES[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq || fail "apt-get update failed (see the output above)"
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" \
  || fail "apt-get install ${PACKAGES[*]} failed (see the output above)"

for binary in "$CHROMIUM" "$CHROMEDRIVER"; do
  [ -x "$binary" ] || fail "$binary is still missing after installing ${PACKAGES[*]}"
done
echo "install_browser: done ($("$CHROMIUM" --version 2>/dev/null || echo chromium), $("$CHROMEDRIVER" --version 2>/dev/null | cut -d' ' -f1-2))"
