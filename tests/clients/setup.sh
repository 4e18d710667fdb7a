#!/usr/bin/env bash
# Creates (or refreshes) the virtual environment with the real protocol SDKs that the
# black-box tests drive. It lives outside the checkout so clean clones reuse it.
set -euo pipefail
venv="${AGENT_REGISTRY_TEST_VENV:-$HOME/.cache/agent-registry-venv}"
requirements="$(dirname "$0")/requirements.txt"
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
cp "$requirements" "$stamp"
echo "protocol SDKs installed in $venv"
