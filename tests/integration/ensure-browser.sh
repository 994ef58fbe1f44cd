#!/usr/bin/env bash
# What the console's browser tests (tests/integration/test_console_browser.py) need from Debian:
# headless Chromium and its WebDriver, which Selenium drives, and npm, which installs the console's
# chart library (make console-assets). Each is installed through apt only when it is missing, so
# nothing is downloaded at test time and a machine that has them is left alone.
set -euo pipefail

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "[browser] apt-get not found: install ${missing[*]} with your package manager" >&2
    exit 1
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "[browser] run as root, or install sudo: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    SUDO=(sudo)
fi
echo "[browser] installing ${missing[*]} from Debian's packages (first time: a few minutes)"
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's wrapper script prints a harmless shell warning on some machines; only the version line matters.
echo "[browser] $(chromium --version 2>/dev/null)"
