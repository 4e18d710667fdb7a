"""Validates the registry's MCP Registry API against the official OpenAPI document.

Usage: check_mcp_registry.py BASE_URL OPENAPI_YAML SERVER_NAME
Sends the requests clients send (VS Code's probe, listing and paging, detail, the limits and
cursors the document allows, unknown names), under /v0.1 and the /v0 alias, and checks with
openapi-core that each request is one the document allows and that each answer (status, media
type, body) is one it documents. Prints "ok" last.
"""

import sys
from urllib.parse import quote

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse


def main() -> None:
    base, document, name = sys.argv[1:4]
    # The official document fails the OpenAPI 3.1 meta-schema itself (a top-level `$id`, which it
    # forbids), so the document is not checked; requests and answers are.
    api = OpenAPI.from_file_path(document, config=Config(spec_validator_cls=None))
    encoded = quote(name, safe="")
    checked = 0

    def check(path: str, params: dict | None = None, expect: int = 200) -> dict:
        nonlocal checked
        answer = httpx.get(f"{base}{path}", params=params)
        assert answer.status_code == expect, (path, params, answer.status_code, answer.text)
        # The document describes /v0.1; /v0 is its development alias, with the same answers.
        documented = path.replace("/v0/", "/v0.1/", 1)
        request = MockRequest("http://registry.test", "get", documented, args=params or {})
        api.validate_request(request)
        media = answer.headers.get("content-type", "").split(";")[0]
        api.validate_response(request, MockResponse(answer.content, answer.status_code, content_type=media))
        checked += 1
        return answer.json()

    for prefix in ("/v0.1", "/v0"):
        check(f"{prefix}/servers", {"limit": "1"})
        first = check(f"{prefix}/servers")
        assert first["servers"], first
        # VS Code's listing, paged on nextCursor.
        cursor, pages = None, 0
        while True:
            params = {"limit": "2", "version": "latest"} | ({"cursor": cursor} if cursor else {})
            page = check(f"{prefix}/servers", params)
            pages += 1
            cursor = page.get("metadata", {}).get("nextCursor")
            if not cursor:
                break
        assert pages >= 2, pages
        # Limits the document allows (any integer) and cursors it allows (any string).
        for limit, count in (("0", 1), ("-5", 1), ("500", None), ("100", None)):
            listed = check(f"{prefix}/servers", {"limit": limit})
            assert count is None or listed["metadata"]["count"] == count, (limit, listed["metadata"])
        check(f"{prefix}/servers", {"cursor": "%%%"})
        check(f"{prefix}/servers", {"cursor": f"{name}:0.0.1"})
        check(f"{prefix}/servers", {"search": name.split("/")[1][:4]})
        check(f"{prefix}/servers", {"updated_since": "2020-01-01T00:00:00Z", "include_deleted": "true"})
        # One server, its versions, and unknown ones: 404 as documented.
        versions = check(f"{prefix}/servers/{encoded}/versions")
        version = versions["servers"][0]["server"]["version"]
        check(f"{prefix}/servers/{encoded}/versions/latest")
        check(f"{prefix}/servers/{encoded}/versions/{quote(version, safe='')}")
        for missing in (f"{prefix}/servers/com.example%2Fnothing/versions",
                        f"{prefix}/servers/com.example%2Fnothing/versions/latest",
                        f"{prefix}/servers/{encoded}/versions/0.0.0-none"):
            body = check(missing, expect=404)
            assert body["error"] == "Server not found", body
    print(f"mcp registry api: {checked} answers valid against the official OpenAPI")
    print("ok")


main()
