"""A real A2A v0.3 agent for the gateway's tests, built with a2a-sdk 0.3's server classes
(the venv of tests/clients/requirements-a2a03.txt).

Usage: a2a_agent03.py PORT [streaming]. Serves JSON-RPC (`message/send`, `message/stream`,
`tasks/get`, `tasks/cancel`) at `/` and its v0.3 card at /.well-known/agent-card.json; prints
`ready` once listening. Like a2a_agent.py: `fail` fails, `ask` asks for input, `slow:N` works N
seconds first, anything else is echoed back as `echo: <text>`.
"""

import asyncio
import sys

import uvicorn

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.apps import A2AStarletteApplication
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentSkill, Part, TextPart
from a2a.utils import new_task


class Echo(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        task = context.current_task or new_task(context.message)
        if context.current_task is None:
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        if text.startswith("slow:"):
            await asyncio.sleep(float(text.split(":", 1)[1]))
        say = lambda words: updater.new_agent_message([Part(root=TextPart(text=words))])  # noqa: E731
        if text == "fail":
            await updater.failed(say("it went wrong"))
        elif text == "ask":
            await updater.requires_input(say("which one?"))
        else:
            await updater.add_artifact([Part(root=TextPart(text=f"echo: {text}"))], name="answer")
            await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def main() -> None:
    port, flags = int(sys.argv[1]), set(sys.argv[2:])
    card = AgentCard(
        name="echo03",
        description="Echoes what it is sent, in A2A v0.3",
        version="1.0.0",
        url=f"http://127.0.0.1:{port}/",
        preferred_transport="JSONRPC",
        protocol_version="0.3.0",
        capabilities=AgentCapabilities(streaming="streaming" in flags),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="Echoes text", tags=["echo"])],
    )
    handler = DefaultRequestHandler(agent_executor=Echo(), task_store=InMemoryTaskStore())
    app = A2AStarletteApplication(agent_card=card, http_handler=handler).build()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        print("ready", flush=True)
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
