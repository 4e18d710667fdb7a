"""Drives the real A2A and ACP Python SDKs against a running registry.

Usage: check_sdks.py BASE_URL A2A_AGENT_ID A2A_AGENT_NAME ACP_NAME
The Rust test `clients::` registers the agents, runs this script, and fails when it exits
non-zero. Each check prints one line; the first failure raises.
"""

import asyncio
import sys

import httpx
from a2a.client import A2ACardResolver
from acp_sdk.client import Client as AcpClient


async def check_a2a(base: str, agent_id: str, agent_name: str) -> None:
    async with httpx.AsyncClient() as http:
        own = await A2ACardResolver(http, base).get_agent_card()
        assert own.name and own.skills, "the registry's own card has a name and skills"
        assert own.supported_interfaces[0].url.startswith("http"), own.supported_interfaces[0].url
        print(f"a2a: registry card {own.name!r} with {len(own.skills)} skills")
        legacy = await A2ACardResolver(http, base, agent_card_path="/.well-known/agent.json").get_agent_card()
        assert legacy.name == own.name
        card = await A2ACardResolver(http, f"{base}/a2a/agents/{agent_id}").get_agent_card()
        assert card.name == agent_name, (card.name, agent_name)
        assert card.supported_interfaces, "the agent's interfaces are resolved"
        print(f"a2a: agent card {card.name!r} with interfaces "
              f"{[(i.protocol_binding, i.protocol_version, i.url) for i in card.supported_interfaces]}")


async def check_acp(base: str, acp_name: str) -> None:
    async with AcpClient(base_url=f"{base}/acp") as client:
        await client.ping()
        names = [m.name async for m in client.agents()]
        assert acp_name in names, (acp_name, names)
        manifest = await client.agent(name=acp_name)
        assert manifest.name == acp_name
        print(f"acp: listed {names}; read {manifest.name!r} ({manifest.input_content_types})")


async def main() -> None:
    base, agent_id, agent_name, acp_name = sys.argv[1:5]
    await check_a2a(base, agent_id, agent_name)
    await check_acp(base, acp_name)
    print("ok")


asyncio.run(main())
