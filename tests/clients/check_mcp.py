"""Drives the official Python MCP SDK's Streamable HTTP client against a running registry.

Usage: check_mcp.py BASE_URL AGENT_ID
Initializes, lists the tools, calls each one, checks every structured result against the
tool's outputSchema, and checks that a failing call is an isError result with a stable code (in the text and in
_meta, with no structuredContent).
"""

import asyncio
import sys

import jsonschema
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

EXPECTED = {"find_agent_for_task", "discover_agents", "get_agent", "get_a2a_card",
            "get_mcp_server_card", "get_acp_manifest", "list_capabilities"}


async def main() -> None:
    base, agent_id = sys.argv[1:3]
    async with streamablehttp_client(f"{base}/mcp") as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            print(f"mcp: {init.serverInfo.name} speaks {init.protocolVersion}")
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert EXPECTED <= set(tools), sorted(tools)
            calls = {
                "find_agent_for_task": {"task": "summarise a contract"},
                "discover_agents": {"capability": "summarize-documents"},
                "get_agent": {"id": agent_id},
                "get_a2a_card": {"id": agent_id},
                "list_capabilities": {},
            }
            for name, arguments in calls.items():
                result = await session.call_tool(name, arguments)
                assert not result.isError, (name, result)
                jsonschema.validate(result.structuredContent, tools[name].outputSchema)
                assert tools[name].annotations.readOnlyHint is True, name
                print(f"mcp: {name} -> {str(result.structuredContent)[:80]}")
            found = (await session.call_tool("find_agent_for_task", {"task": "summarise a contract"})).structuredContent
            assert found["results"][0]["id"] == agent_id, found
            failed = await session.call_tool("get_agent", {"id": "not-a-uuid"})
            assert failed.isError and failed.structuredContent is None, failed
            assert failed.meta["agent-registry/error"]["code"] == "validation_failed", failed
            assert "validation_failed" in failed.content[0].text and "/id" in failed.content[0].text, failed
            print("mcp: an invalid id is an isError result with code validation_failed")
    print("ok")


asyncio.run(main())
