#!/usr/bin/env python3
"""Watch fan-out benchmark: N concurrent `GET /watch` streams, then registrations; measures the
time from sending each registration to its event arriving at every watcher (p50/p99), against a
baseline measured in the same run: the registration's own round trip.

Usage: benches/watch.py [--binary PATH] [--watchers 1000] [--registrations 100] [--out benches/results/watch]

It starts the binary on SQLite in a temporary directory (nothing else needed), bootstraps an
Admin key, and writes a Markdown and a JSON file of the figures. Only the standard library is
used; the load generator runs on the same cores as the server, so the figures are an upper bound.
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BINARY = Path.home() / ".cache/agent-registry-release/release/agent-registry"
TOKEN = "watch-benchmark-bootstrap-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def request(port: int, method: str, path: str, body: dict | None = None, key: str | None = None,
                  headers: dict | None = None) -> tuple[int, dict]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(body).encode() if body is not None else b""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(data)}"]
    if body is not None:
        head.append("Content-Type: application/json")
    if key:
        head.append(f"X-Api-Key: {key}")
    for k, v in (headers or {}).items():
        head.append(f"{k}: {v}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    status = int(raw.split(b" ", 2)[1])
    payload = raw.split(b"\r\n\r\n", 1)[1]
    try:
        return status, json.loads(payload) if payload else {}
    except json.JSONDecodeError:
        return status, {}


class Watcher:
    """One SSE stream; records when each agent's `registered` event arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.ready = asyncio.Event()

    async def run(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /watch?kind=registered HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        self.ready.set()
        buffer = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = time.perf_counter()
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                for line in block.split(b"\n"):
                    # Chunked transfer framing lines are skipped: only `data:` lines matter.
                    if line.startswith(b"data:"):
                        event = json.loads(line[5:])
                        self.arrived.setdefault(event["agentId"], now)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def bench(port: int, watchers: int, registrations: int) -> dict:
    status, body = await request(port, "POST", "/api-keys/bootstrap", headers={"X-Bootstrap-Token": TOKEN})
    assert status == 201, (status, body)
    key = body["key"]
    streams = [Watcher() for _ in range(watchers)]
    tasks = [asyncio.create_task(w.run(port)) for w in streams]
    await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in streams)), timeout=60)
    await asyncio.sleep(1)
    sent: dict[str, float] = {}
    round_trips = []
    for i in range(registrations):
        agent = {"name": f"Bench {i}", "capabilities": [{"name": "bench"}],
                 "endpoints": [{"name": "e", "protocol": "A2A", "address": f"https://bench{i}.example/a2a",
                                "livenessModel": "Persistent"}]}
        start = time.perf_counter()
        status, created = await request(port, "POST", "/agents", agent, key)
        round_trips.append((time.perf_counter() - start) * 1000)
        assert status == 201, (status, created)
        sent[created["id"]] = start
        await asyncio.sleep(0.05)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline and any(len(w.arrived) < registrations for w in streams):
        await asyncio.sleep(0.1)
    for t in tasks:
        t.cancel()
    latencies = [(w.arrived[a] - t) * 1000 for w in streams for a, t in sent.items() if a in w.arrived]
    missing = watchers * registrations - len(latencies)
    return {
        "watchers": watchers,
        "registrations": registrations,
        "deliveries": len(latencies),
        "missing": missing,
        "event_p50_ms": statistics.median(latencies),
        "event_p99_ms": percentile(latencies, 99),
        "event_max_ms": max(latencies),
        "registration_p50_ms": statistics.median(round_trips),
        "registration_p99_ms": percentile(round_trips, 99),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.environ.get("AGENT_REGISTRY_BIN", str(DEFAULT_BINARY)))
    p.add_argument("--watchers", type=int, default=1000)
    p.add_argument("--registrations", type=int, default=100)
    p.add_argument("--reps", type=int, default=3, help="runs, each on a fresh server; medians are reported")
    p.add_argument("--out", default=str(ROOT / "benches/results/watch"))
    args = p.parse_args()
    runs = [run_once(args) for _ in range(args.reps)]
    keys = [k for k in runs[0] if k.endswith("_ms")]
    result = {k: statistics.median(r[k] for r in runs) for k in keys}
    for k in ("watchers", "registrations"):
        result[k] = runs[0][k]
    result["deliveries"] = sum(r["deliveries"] for r in runs)
    result["missing"] = sum(r["missing"] for r in runs)
    result["runs"] = runs
    return report(args, result)


def run_once(args: argparse.Namespace) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [args.binary, "serve", "--listen", f"127.0.0.1:{port}", "--database-url", f"sqlite://{tmp}/bench.db",
             "--bootstrap-token", TOKEN, "--log", "warn", "--rate-limit-discovery", "0",
             "--rate-limit-key", "0", "--rate-limit-address", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            result = asyncio.run(bench(port, args.watchers, args.registrations))
        finally:
            server.terminate()
            server.wait()
    return result


def report(args: argparse.Namespace, result: dict) -> int:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    result["commit"] = commit
    result["cores"] = os.cpu_count()
    Path(args.out + ".json").write_text(json.dumps(result, indent=2) + "\n")
    ratio = result["event_p50_ms"] / result["registration_p50_ms"]
    md = f"""# Watch fan-out (commit `{commit}`, {result['cores']} cores, SQLite, load generator on the same cores)

{result['watchers']} concurrent `GET /watch` streams; {result['registrations']} registrations, one every 50 ms;
{len(result['runs'])} runs on fresh servers, medians of the runs' figures. Latency is from sending `POST /agents` to the
`registered` event arriving at a watcher, over {result['deliveries']} deliveries in all ({result['missing']} missing).
Per run, p99: {', '.join(f"{r['event_p99_ms']:.1f} ms" for r in result['runs'])}.

| measure | p50 | p99 | max |
|---|---|---|---|
| registration → event at every watcher | {result['event_p50_ms']:.1f} ms | {result['event_p99_ms']:.1f} ms | {result['event_max_ms']:.1f} ms |
| baseline: the registration's own round trip | {result['registration_p50_ms']:.1f} ms | {result['registration_p99_ms']:.1f} ms | |

Median event latency is {ratio:.1f}× the median registration round trip. Target: p99 under 100 ms.
"""
    Path(args.out + ".md").write_text(md)
    print(md)
    return 0 if result["missing"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
