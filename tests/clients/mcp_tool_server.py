"""A real MCP server for the gateway's tests, built with the `mcp` SDK's FastMCP.

Usage: mcp_tool_server.py PORT [stateless]. Serves Streamable HTTP at /mcp (with sessions, or
stateless when asked); prints `ready` once listening. Tools: `echo` answers `echo: <text>`,
`count` reports progress up to `n` and answers `{"counted": n}` as structured content, `fail`
raises, `wait` reports progress 0, then sleeps `seconds` (counting the calls that were cancelled), `cancelled` tells how
many `wait` calls were cancelled.
"""

import asyncio
import sys

from typing import TypedDict

import uvicorn
from mcp.server.fastmcp import Context, FastMCP

cancelled_waits = 0


class Counted(TypedDict):
    counted: int


def build(stateless: bool) -> FastMCP:
    server = FastMCP("gateway-test-tools", stateless_http=stateless, log_level="ERROR")

    @server.tool(description="Echoes the text")
    def echo(text: str) -> str:
        return f"echo: {text}"

    @server.tool(description="Counts to n, reporting progress")
    async def count(n: int, ctx: Context) -> Counted:
        for i in range(1, n + 1):
            await ctx.report_progress(i, n, f"step {i}")
            await asyncio.sleep(0.05)
        return {"counted": n}

    @server.tool(description="Always fails")
    def fail(text: str) -> str:
        raise ValueError(f"it went wrong with {text}")

    @server.tool(description="Waits, then answers")
    async def wait(seconds: float, ctx: Context) -> str:
        global cancelled_waits
        # Tells the caller the call has started.
        await ctx.report_progress(0, seconds)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            cancelled_waits += 1
            raise
        return "waited"

    @server.tool(description="How many wait calls were cancelled")
    def cancelled() -> int:
        return cancelled_waits

    return server


def main() -> None:
    port = int(sys.argv[1])
    stateless = len(sys.argv) > 2 and sys.argv[2] == "stateless"
    app = build(stateless).streamable_http_app()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        print("ready", flush=True)
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
