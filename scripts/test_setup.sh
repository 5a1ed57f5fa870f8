#!/usr/bin/env bash
# What the tests need beyond the venv, for `make test-setup` (which `make test` runs first):
# Chromium for the browser tests (Playwright drives it; it never downloads a browser), the
# PostgreSQL server for the hub's gradebook, python3-venv for the hub's user environment, Node.js
# and npm for JupyterHub's configurable-http-proxy.  Every step checks first, so on a machine that
# has everything this takes a second or two.  It installs only as root; otherwise it prints one
# line saying what is missing and what to run, and the tests that need those things skip.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
{ compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && id postgres >/dev/null 2>&1; } || missing+=(postgresql)
dpkg -s python3-venv >/dev/null 2>&1 || missing+=(python3-venv)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
proxy_missing=0
command -v configurable-http-proxy >/dev/null 2>&1 || proxy_missing=1

if [ "$(id -u)" != 0 ]; then
    if ((${#missing[@]} || proxy_missing)); then
        echo "test-setup: not root, so not installed: ${missing[*]}$( ((proxy_missing)) && echo ' configurable-http-proxy')" \
             "(the tests that need them skip; run \`sudo make test-setup\` to install them)"
    fi
    exit 0
fi
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# JupyterHub's proxy, from the npm registry.
command -v configurable-http-proxy >/dev/null 2>&1 || npm install -g --silent configurable-http-proxy
