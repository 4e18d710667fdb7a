"""A real A2A agent for the gateway's tests, built with a2a-sdk's server classes.

Usage: a2a_agent.py PORT [streaming] [rest]. Serves JSON-RPC (A2A v1.0, and v0.3 on the same
endpoint) at `/`, or with `rest` the HTTP+JSON binding, and its card at
/.well-known/agent-card.json (`capabilities.streaming` with `streaming`); prints `ready` once
listening. What it does depends on the text it is sent: `fail` fails the task, `ask` asks for
input, `slow:N` works N seconds first, `parts:N` streams its answer in N artifact chunks,
anything else is echoed back as `echo: <text>`.
"""

import asyncio
import sys

import uvicorn
from starlette.applications import Starlette

from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_artifact, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes.agent_card_routes import create_agent_card_routes
from a2a.server.routes.jsonrpc_routes import create_jsonrpc_routes
from a2a.server.routes.rest_routes import create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill


class Echo(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        if context.current_task is None:
            await event_queue.enqueue_event(new_task_from_user_message(context.message))
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.start_work()
        if text.startswith("slow:"):
            await asyncio.sleep(float(text.split(":", 1)[1]))
        if text.startswith("parts:"):
            count = int(text.split(":", 1)[1])
            for i in range(count):
                await updater.add_artifact(
                    new_text_artifact(name="answer", text=f"part {i}").parts,
                    artifact_id="answer",
                    append=i > 0,
                    last_chunk=i == count - 1,
                )
            await updater.complete()
        elif text == "fail":
            await updater.failed(updater.new_agent_message([new_text_message("it went wrong").parts[0]]))
        elif text == "ask":
            await updater.requires_input(updater.new_agent_message([new_text_message("which one?").parts[0]]))
        else:
            await updater.add_artifact(new_text_artifact(name="answer", text=f"echo: {text}").parts)
            await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def main() -> None:
    port, flags = int(sys.argv[1]), set(sys.argv[2:])
    url = f"http://127.0.0.1:{port}/"
    binding = "HTTP+JSON" if "rest" in flags else "JSONRPC"
    card = AgentCard(
        name="echo",
        description="Echoes what it is sent",
        version="1.0.0",
        supported_interfaces=[AgentInterface(url=url, protocol_binding=binding, protocol_version="1.0")],
        capabilities=AgentCapabilities(streaming="streaming" in flags),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="Echoes text", tags=["echo"])],
    )
    handler = DefaultRequestHandler(agent_executor=Echo(), task_store=InMemoryTaskStore(), agent_card=card)
    if "rest" in flags:
        protocol_routes = create_rest_routes(handler)
    else:
        protocol_routes = create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True)
    routes = create_agent_card_routes(card) + protocol_routes
    config = uvicorn.Config(Starlette(routes=routes), host="127.0.0.1", port=port, log_level="warning")
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
