"""Checks the registry's own OpenAPI document as code generators and linters read it.

Usage: check_openapi.py BASE_URL REDOCLY
Fetches BASE_URL/openapi.json, validates it against the OpenAPI 3.1 specification with
openapi-spec-validator (every error listed, not only the first), then lints it with Redocly
CLI's recommended rules (REDOCLY is its `redocly` executable), where any error or warning fails.
Prints "ok" last.
"""

import json
import os
import subprocess
import sys
import tempfile

import httpx
from openapi_spec_validator import OpenAPIV31SpecValidator


def main() -> None:
    base, redocly = sys.argv[1:3]
    answer = httpx.get(f"{base}/openapi.json")
    assert answer.status_code == 200, answer.status_code
    document = answer.json()
    assert document["openapi"].startswith("3.1"), document["openapi"]

    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert not errors, f"{len(errors)} OpenAPI 3.1 errors:\n" + "\n".join(errors[:40])

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "openapi.json")
        with open(path, "w") as f:
            json.dump(document, f)
        # The probes answer only 200 or 503 (no 4xx exists for them): the one rule waived, for
        # exactly those two operations.
        with open(os.path.join(folder, ".redocly.lint-ignore.yaml"), "w") as f:
            f.write("openapi.json:\n  operation-4xx-response:\n"
                    "    - '#/paths/~1healthz/get/responses'\n    - '#/paths/~1readyz/get/responses'\n")
        # Telemetry off and no update check: the lint runs with no network.
        env = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true")
        lint = subprocess.run(
            [redocly, "lint", path, "--format=json", "--max-problems=1000"],
            capture_output=True, text=True, env=env, cwd=folder, timeout=120,
        )
        report = json.loads(lint.stdout[lint.stdout.index("{"):]) if "{" in lint.stdout else None
        assert report is not None, f"redocly printed no report (exit {lint.returncode}):\n{lint.stdout}\n{lint.stderr}"
        problems = [
            f"{p['severity']} {p['ruleId']}: {p['message']} at {p['location'][0]['pointer'] if p.get('location') else '?'}"
            for p in report["problems"]
        ]
        assert not problems, f"{len(problems)} Redocly problems:\n" + "\n".join(problems[:40])
        assert lint.returncode == 0, (lint.returncode, lint.stderr)

    operations = sum(
        1 for item in document["paths"].values() for method in item if method in ("get", "put", "post", "delete", "patch")
    )
    print(f"{operations} operations valid and lint-free")
    print("ok")


if __name__ == "__main__":
    main()
