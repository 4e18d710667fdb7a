"""Drives the real ACP Python SDK (acp-sdk's `Client`) against a running registry: lists every
agent without paging, reads failures as `ACPError`, and finds where a found agent's runs go (the `Link` header).

Usage: check_acp.py BASE_URL EXPECTED_COUNT ECHO_PORT
The Rust test `clients::` registers EXPECTED_COUNT ACP agents (one of them `echo_agent` at
http://127.0.0.1:ECHO_PORT), runs this script, and fails unless its last line is `ok`.
"""

import asyncio
import sys

import httpx

from acp_sdk.client import Client
from acp_sdk.models import ACPError


async def main() -> None:
    base, expected, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    async with Client(base_url=f"{base}/acp") as registry:
        names = [m.name async for m in registry.agents()]
        assert len(names) == expected, (len(names), expected, names)
        print(f"acp: agents() lists all {len(names)} agents without paging", flush=True)

        try:
            await registry.agent(name="no-such-agent")
            raise AssertionError("an unknown agent was found")
        except ACPError as e:
            assert e.error.code == "not_found", e.error
            print(f"acp: agent(name='no-such-agent') raises ACPError {e.error.code}: {e.error.message}", flush=True)

        try:
            await registry.run_sync("hi", agent="echo-agent")
            raise AssertionError("the registry ran an agent")
        except ACPError as e:
            assert e.error.code == "not_found" and "Link" in e.error.message, e.error
            print(f"acp: a run sent to the registry raises ACPError {e.error.code}", flush=True)

        manifest = await registry.agent(name="echo-agent")
        assert manifest.name == "echo-agent"
    # acp-sdk does not expose headers: the `Link` header of the same GET names the ACP server.
    async with httpx.AsyncClient() as http:
        link = (await http.get(f"{base}/acp/agents/echo-agent")).headers["link"]
        assert link == f'<http://127.0.0.1:{port}>; rel="service"; title="ACP server"', link
        print(f"acp: echo-agent runs at {link}", flush=True)
    print("ok")


asyncio.run(main())
