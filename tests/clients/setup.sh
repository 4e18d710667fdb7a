#!/usr/bin/env bash
# Creates (or refreshes) the virtual environment with the real protocol SDKs that the
# black-box tests drive. It lives outside the checkout so clean clones reuse it.
set -euo pipefail
venv="${AGENT_REGISTRY_TEST_VENV:-$HOME/.cache/agent-registry-venv}"
requirements="$(dirname "$0")/requirements.txt"
stamp="$venv/.requirements"
if ! { [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; }; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
  echo "protocol SDKs installed in $venv"
fi

# --- A2A clients of the other generation (issue 15): a2a-sdk 0.3.x in a venv of its own, and
# @a2a-js/sdk installed with `npm ci` from the committed lock file, both outside the checkout.
a2a03_venv="${AGENT_REGISTRY_TEST_VENV_A2A03:-$HOME/.cache/agent-registry-venv-a2a03}"
a2a03_requirements="$(dirname "$0")/requirements-a2a03.txt"
if ! { [ -x "$a2a03_venv/bin/python" ] && cmp -s "$a2a03_requirements" "$a2a03_venv/.requirements"; }; then
  python3 -m venv "$a2a03_venv"
  "$a2a03_venv/bin/pip" install --quiet --disable-pip-version-check -r "$a2a03_requirements"
  cp "$a2a03_requirements" "$a2a03_venv/.requirements"
  echo "a2a-sdk 0.3 installed in $a2a03_venv"
fi
a2a_js="${AGENT_REGISTRY_TEST_NODE:-$HOME/.cache/agent-registry-node}/a2a-js"
a2a_js_lock="$(dirname "$0")/a2a-js/package-lock.json"
if ! { [ -d "$a2a_js/node_modules/@a2a-js/sdk" ] && cmp -s "$a2a_js_lock" "$a2a_js/.package-lock.json"; }; then
  mkdir -p "$a2a_js"
  cp "$(dirname "$0")/a2a-js/package.json" "$a2a_js_lock" "$a2a_js/"
  (cd "$a2a_js" && npm ci --silent --no-audit --no-fund)
  cp "$a2a_js_lock" "$a2a_js/.package-lock.json"
  echo "@a2a-js/sdk installed in $a2a_js"
fi
# --- end of the A2A clients block
