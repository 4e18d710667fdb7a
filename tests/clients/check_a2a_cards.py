"""Drives the installed a2a-sdk (1.x or 0.3.x, whichever venv runs it) against every card
registered in a running registry, at each agent's A2A base URL `<registry>/a2a/agents/{id}/`:
the card resolver, then the client factory.

Usage: check_a2a_cards.py BASE_URL AGENTS_JSON
AGENTS_JSON is a list of {id, name, file, signed, shape} ("v1", "v03" or "dual"). The Rust test
`clients::` registers the agents, runs this script, and fails unless its last line is `ok`.
"""

import asyncio
import json
import sys
from importlib.metadata import version

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory

SDK = version("a2a-sdk")
LEGACY = SDK.startswith("0.")


def interfaces(card) -> list:
    if LEGACY:
        extra = [(i.transport, i.url) for i in card.additional_interfaces or []]
        return [(card.preferred_transport, card.url)] + extra
    return [(i.protocol_binding, i.protocol_version, i.url) for i in card.supported_interfaces]


async def check(base: str, agent: dict) -> None:
    url = f"{base}/a2a/agents/{agent['id']}/"
    label = f"{agent['file']} ({agent['shape']}{', signed' if agent['signed'] else ''})"
    # A signed card is served as signed (a member added would break its signature): a v0.3
    # client cannot read a signed v1-only card (no `url`), and a 1.x client finds no interface it
    # connects to in the signed v0.3 sample (its `protocolVersion` is 0.2.9; 1.x connects to 0.3
    # and later). These are the documented exceptions.
    readable = not (LEGACY and agent["signed"] and agent["shape"] == "v1")
    connectable = readable and not (not LEGACY and agent["signed"] and agent["shape"] == "v03")
    async with httpx.AsyncClient() as http:
        try:
            card = await A2ACardResolver(http, url).get_agent_card()
        except Exception as e:  # the SDK's own error types differ between 0.3 and 1.x
            assert not readable, f"{label}: {e}"
            assert "url" in str(e), f"{label}: {e}"
            print(f"a2a-sdk {SDK}: {label}: refused as documented (no `url` in a signed v1 card)", flush=True)
            return
        assert readable, f"{label}: a signed v1 card was not expected to resolve in a2a-sdk {SDK}"
        assert card.name == agent["name"], (card.name, agent["name"])
        assert interfaces(card), label
        try:
            if LEGACY:
                client = ClientFactory(ClientConfig(httpx_client=http)).create(card)
            else:
                client = await ClientFactory(ClientConfig(httpx_client=http)).create_from_url(url)
        except ValueError as e:
            assert not connectable and "no compatible transports" in str(e), f"{label}: {e}"
            print(f"a2a-sdk {SDK}: {label}: resolved; no interface of version 0.3 or later, as documented")
            return
        assert connectable, f"{label}: a client was not expected for a signed v0.3 card in a2a-sdk {SDK}"
        assert client is not None
        print(f"a2a-sdk {SDK}: {label}: {interfaces(card)}", flush=True)


async def main() -> None:
    base, agents = sys.argv[1], json.loads(sys.argv[2])
    for agent in agents:
        await check(base, agent)
    print("ok")


asyncio.run(main())
