#!/usr/bin/env python3
"""Gateway benchmark: a task sent through the registry (`POST /tasks`, answered when the agent
has answered) against the same echo agent called directly (`SendMessage` over A2A JSON-RPC), in
one run, at the same concurrency: the latency the gateway adds (p50, p99) and the throughput
ratio.

Usage: benches/gateway.py [--binary PATH] [--agent PATH] [--connections 64] [--duration 10]
                          [--reps 3] [--out benches/results/gateway]

Needs wrk 4.x (`apt-get install -y wrk`) and the release builds of both binaries:
    CARGO_TARGET_DIR=$HOME/.cache/agent-registry-release cargo build --release -p agent-registry -p echo-agent
It starts the echo agent and the registry (SQLite in a temporary directory, rate limits off),
registers the agent, then alternates direct and gateway runs so both see the same machine.
The load generator shares the cores with both servers: the figures compare, they do not promise.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = Path.home() / ".cache/agent-registry-release/release"
TOKEN = "gateway-benchmark-bootstrap-token"
LUA = ROOT / "benches/lua/post.lua"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, body: dict | None = None, headers: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def wait_for(url: str) -> None:
    for _ in range(200):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.05)
    sys.exit(f"{url} never answered")


def wrk(url: str, body: dict, key: str, connections: int, duration: int) -> dict:
    """One wrk run: requests/s, p50 and p99 in ms, and how many answers were not 2xx."""
    env = dict(os.environ, WRK_BODY=json.dumps(body), WRK_API_KEY=key)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(LUA), url],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    def ms(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=RELEASE / "agent-registry", type=Path)
    parser.add_argument("--agent", default=RELEASE / "echo-agent", type=Path)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=ROOT / "benches/results/gateway", type=Path)
    args = parser.parse_args()

    agent_port, port = free_port(), free_port()
    agent_url = f"http://127.0.0.1:{agent_port}/"
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        agent = subprocess.Popen([args.agent, f"127.0.0.1:{agent_port}"], stdout=subprocess.DEVNULL)
        server = subprocess.Popen(
            [args.binary, "--listen", f"127.0.0.1:{port}", "--database-url", f"sqlite://{tmp}/gateway.db",
             "--bootstrap-token", TOKEN, "--rate-limit-key", "0", "--rate-limit-address", "0",
             "--rate-limit-discovery", "0", "--log", "warn"],
            stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/server.log", "w"),
        )
        try:
            wait_for(f"{base}/readyz")
            key = call(f"{base}/api-keys/bootstrap", {}, {"x-bootstrap-token": TOKEN})["key"]
            call(f"{base}/agents", {
                "name": "Echo", "capabilities": [{"name": "echo"}],
                "endpoints": [{"name": "a2a", "protocol": "A2A", "address": agent_url, "ttlSeconds": 3600,
                               "protocolMetadata": {"protocolVersion": "1.0", "protocolBinding": "JSONRPC"}}],
            }, {"x-api-key": key})
            direct_body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
                           "params": {"message": {"role": "ROLE_USER", "messageId": "m1", "parts": [{"text": "hello"}]}}}
            task_body = {"capability": "echo", "input": "hello", "waitSeconds": 10}
            answer = call(f"{base}/tasks", task_body, {"x-api-key": key})
            assert answer.get("state") == "completed" and answer.get("output") == "hello", answer
            runs = {"direct": [], "gateway": []}
            for _ in range(args.reps):
                runs["direct"].append(wrk(agent_url, direct_body, "", args.connections, args.duration))
                runs["gateway"].append(wrk(f"{base}/tasks", task_body, key, args.connections, args.duration))
        finally:
            for process in (server, agent):
                process.terminate()
                process.wait(timeout=10)

    median = {side: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms")}
              for side, rs in runs.items()}
    result = {
        "connections": args.connections, "duration_s": args.duration, "reps": args.reps, "runs": runs,
        "median": median,
        "added_p50_ms": median["gateway"]["p50_ms"] - median["direct"]["p50_ms"],
        "added_p99_ms": median["gateway"]["p99_ms"] - median["direct"]["p99_ms"],
        "throughput_ratio": median["gateway"]["rps"] / median["direct"]["rps"],
        "non_2xx": sum(r["non_2xx"] for rs in runs.values() for r in rs),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    d, g = median["direct"], median["gateway"]
    markdown = f"""# Gateway benchmark ({result['commit']}, {args.connections} connections, {args.reps} × {args.duration} s, medians)

| path | requests/s | p50 | p99 |
|---|---:|---:|---:|
| echo agent, direct (`SendMessage`) | {d['rps']:,.0f} | {d['p50_ms']:.2f} ms | {d['p99_ms']:.2f} ms |
| through the registry (`POST /tasks`, stored task and log) | {g['rps']:,.0f} | {g['p50_ms']:.2f} ms | {g['p99_ms']:.2f} ms |

- Added latency: {result['added_p50_ms']:.2f} ms at p50, {result['added_p99_ms']:.2f} ms at p99 (target: at most 1 ms at p50).
- Throughput ratio: {result['throughput_ratio']:.2f}× direct (target: at least 0.5×).
- Answers that were not 2xx: {result['non_2xx']}.
"""
    args.out.with_suffix(".md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
