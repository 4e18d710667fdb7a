"""Drives the real ACP Python SDK (acp-sdk's `Client`) against a running registry: lists every
agent without paging, reads failures as `ACPError`, finds where a found agent's runs go (the
manifest's `metadata.annotations.agent_registry` and the `Link` header) and runs it there, on a
real acp-sdk server this script starts.

Usage: check_acp.py BASE_URL EXPECTED_COUNT ECHO_PORT
The Rust test `clients::` registers EXPECTED_COUNT ACP agents (one of them `echo_agent` at
http://127.0.0.1:ECHO_PORT), runs this script, and fails unless its last line is `ok`.
"""

import asyncio
import sys

import httpx

from acp_sdk.client import Client
from acp_sdk.models import ACPError, Message, MessagePart
from acp_sdk.server import Server


def echo_server() -> Server:
    """The ACP server the registry's `echo_agent` names: it answers with what it was sent."""
    server = Server()

    @server.agent(name="echo_agent", description="Echoes its input")
    async def echo_agent(input: list[Message]):
        for message in input:
            yield message

    return server


async def started(server: Server, port: int) -> asyncio.Task:
    task = asyncio.create_task(
        server.serve(port=int(port), self_registration=False, configure_logger=False, access_log=False, log_level="warning")
    )
    async with httpx.AsyncClient() as http:
        for _ in range(100):
            try:
                if (await http.get(f"http://127.0.0.1:{port}/ping")).status_code == 200:
                    return task
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the acp-sdk echo server did not start")


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
    # Where it runs, in the manifest (annotations allow extra members in acp-sdk's model)...
    where = manifest.metadata.annotations.model_extra["agent_registry"]
    assert where == {"acp_server_url": f"http://127.0.0.1:{port}", "agent_name": "echo_agent"}, where
    # ...and in the `Link` header of the same GET (acp-sdk does not expose headers).
    async with httpx.AsyncClient() as http:
        link = (await http.get(f"{base}/acp/agents/echo-agent")).headers["link"]
        assert link == f'<{where["acp_server_url"]}>; rel="service"; title="ACP server"', link
        print(f"acp: echo-agent runs at {link}", flush=True)
    # From lookup to run: the found agent's own server runs it.
    server = echo_server()
    serving = await started(server, port)
    async with Client(base_url=where["acp_server_url"]) as agent_server:
        run = await agent_server.run_sync(
            Message(parts=[MessagePart(content="hello", content_type="text/plain")]), agent=where["agent_name"]
        )
    assert run.status == "completed", run
    assert run.output[0].parts[0].content == "hello", run.output
    print(f"acp: run_sync on {where['agent_name']} at its server: {run.status}", flush=True)
    server.server.should_exit = True
    await serving
    print("ok")


asyncio.run(main())
