#!/usr/bin/env python3
"""Frozen-database bound: how long writes wait when PostgreSQL stops answering.

Starts the registry on PostgreSQL through a TCP proxy of this script, registers one agent, then
freezes the proxy (connections stay open, nothing is forwarded: a hung server or a partition)
and sends N writes at once. Every one must be answered `503` with `Retry-After`, none later than
`--store-timeout-ms` plus a margin. Prints each wait and writes a Markdown and a JSON file.

Usage: benches/frozen_store.py [--binary PATH] [--writes 12] [--store-timeout-ms 2000]
                               [--out benches/results/frozen-store]
Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and `psql`; creates and drops a
database of its own.
"""

import argparse
import asyncio
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = Path.home() / ".cache/agent-registry-release/release/agent-registry"
TOKEN = "frozen-store-benchmark-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FreezingProxy:
    """Forwards to PostgreSQL until frozen; then holds every connection open and sends nothing."""

    def __init__(self, port: int) -> None:
        self.port, self.frozen = port, threading.Event()
        threading.Thread(target=lambda: asyncio.run(self.serve()), daemon=True).start()

    async def pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                while self.frozen.is_set():
                    await asyncio.sleep(3600)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass

    async def handle(self, client_reader, client_writer) -> None:
        while self.frozen.is_set():
            await asyncio.sleep(3600)
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", 5432)
        await asyncio.gather(self.pipe(client_reader, server_writer), self.pipe(server_reader, client_writer))

    async def serve(self) -> None:
        server = await asyncio.start_server(self.handle, "127.0.0.1", self.port)
        async with server:
            await server.serve_forever()


def psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=DEFAULT_BINARY, type=Path)
    parser.add_argument("--writes", type=int, default=12)
    parser.add_argument("--store-timeout-ms", type=int, default=2000)
    parser.add_argument("--out", default=ROOT / "benches/results/frozen-store", type=Path)
    args = parser.parse_args()

    database = f"frozen_store_{os.getpid()}"
    psql(f"CREATE DATABASE {database}")
    proxy, port = FreezingProxy(free_port()), free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [args.binary, "--listen", f"127.0.0.1:{port}", "--auto-migrate", "--bootstrap-token", TOKEN,
         "--database-url", f"postgres://postgres@127.0.0.1:{proxy.port}/{database}",
         "--store-timeout-ms", str(args.store_timeout_ms), "--log", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def call(path: str, body: dict, headers: dict) -> tuple[int, float, str | None]:
        request = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                         headers={"content-type": "application/json", **headers})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, time.monotonic() - started, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, time.monotonic() - started, e.headers.get("retry-after")

    try:
        for _ in range(200):
            try:
                if urllib.request.urlopen(f"{base}/readyz", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("the registry never became ready")
        key = json.loads(call("/api-keys/bootstrap", {}, {"x-bootstrap-token": TOKEN})[2])["key"]
        agent = lambda n: {"name": n, "capabilities": [{"name": "frozen"}],
                           "endpoints": [{"name": "e", "address": "https://frozen.example", "ttlSeconds": 60}]}
        assert call("/agents", agent("before"), {"x-api-key": key})[0] == 201
        proxy.frozen.set()
        with concurrent.futures.ThreadPoolExecutor(args.writes) as pool:
            answers = list(pool.map(lambda n: call("/agents", agent(f"frozen-{n}"), {"x-api-key": key}),
                                    range(args.writes)))
    finally:
        server.terminate()
        server.wait(timeout=10)
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

    waits = sorted(wait for _, wait, _ in answers)
    result = {
        "store_timeout_ms": args.store_timeout_ms, "writes": args.writes,
        "statuses": sorted({status for status, _, _ in answers}),
        "with_retry_after": sum(1 for status, _, after in answers if status == 503 and after),
        "waits_s": waits, "longest_s": waits[-1],
        "longest_over_bound": waits[-1] / (args.store_timeout_ms / 1000),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = f"""# Writes to a frozen PostgreSQL ({args.writes} at once, `--store-timeout-ms {args.store_timeout_ms}`)

- Statuses: {result['statuses']}; with `Retry-After`: {result['with_retry_after']} of {args.writes}.
- Waits: shortest {waits[0]:.2f} s, median {waits[len(waits) // 2]:.2f} s, longest {waits[-1]:.2f} s
  ({result['longest_over_bound']:.2f}× the bound).
"""
    args.out.with_suffix(".md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
