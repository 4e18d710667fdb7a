"""ACP agents built with acp-sdk's `Server`, for the gateway's end-to-end tests (tests/tasks_acp.rs).

Usage: acp_agent.py PORT
Serves on 127.0.0.1:PORT and prints `ready` once `/ping` answers. The agents:
- `echo_agent`: answers with the messages it was sent;
- `asking_agent`: asks for more input (a `MessageAwaitRequest`) and echoes the answer;
- `failing_agent`: raises, so the run fails with the exception's text;
- `slow_agent`: reports progress and takes a minute (to be cancelled).
"""

import asyncio
import sys

import httpx

from acp_sdk.models import Message, MessageAwaitRequest, MessagePart
from acp_sdk.server import Server


def server() -> Server:
    server = Server()

    @server.agent(name="echo_agent", description="Echoes its input")
    async def echo_agent(input: list[Message]):
        for message in input:
            yield message

    @server.agent(name="asking_agent", description="Asks for more input")
    async def asking_agent(input: list[Message]):
        question = Message(parts=[MessagePart(content="which language?", content_type="text/plain")])
        answer = yield MessageAwaitRequest(message=question)
        yield MessagePart(content=f"got {answer}", content_type="text/plain")

    @server.agent(name="failing_agent", description="Always fails")
    async def failing_agent(input: list[Message]):
        raise RuntimeError("it went wrong")
        yield  # a generator, like the other agents

    @server.agent(name="slow_agent", description="Takes a minute")
    async def slow_agent(input: list[Message]):
        for step in range(60):
            yield {"step": step}
            await asyncio.sleep(1)

    return server


async def main() -> None:
    port = int(sys.argv[1])
    serving = asyncio.create_task(
        server().serve(
            host="127.0.0.1",
            port=port,
            self_registration=False,
            configure_logger=False,
            access_log=False,
            log_level="warning",
        )
    )
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                if (await http.get(f"http://127.0.0.1:{port}/ping")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        else:
            raise SystemExit("the ACP server did not start")
    print("ready", flush=True)
    await serving


if __name__ == "__main__":
    asyncio.run(main())
