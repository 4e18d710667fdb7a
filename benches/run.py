#!/usr/bin/env python3
"""Load benchmark of the agent registry's release binary, in one run.

Starts the binary on a fresh database (a SQLite file, or with --backend postgres a new
PostgreSQL database and Redis key prefix), fills it to each size (10,000 then 100,000 agents),
measures /healthz (baseline), discovery by capability, discovery by text, heartbeats and
registration with wrk, reads the server's RSS, optionally measures several replicas on the
shared backends (--replicas), then measures start-up on the filled database. Writes
results/latest.* (SQLite) or results/postgres.* (PostgreSQL). Standard library only; needs `wrk`
on PATH (and `psql`, `redis-cli` for PostgreSQL). See README.md for usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
LUA_DIR = BENCH_DIR / "lua"
REPO_DIR = BENCH_DIR.parent
# Extra arguments every server gets (--server-arg).
SERVER_ARGS: list[str] = []
DEFAULT_BINARY = Path.home() / ".cache/agent-registry-release/release/agent-registry"
BUILD_COMMAND = ["cargo", "build", "--release", "-p", "agent-registry"]
BUILD_TARGET_DIR = Path.home() / ".cache/agent-registry-release"

# Agents created by the registration scenario carry this owner, so they can be listed and
# deleted afterwards and every other scenario always runs at exactly the intended size.
REGISTER_OWNER = "bench-register"

SCENARIOS = ["healthz", "capability", "text", "heartbeat", "register"]
SCENARIO_TITLES = {
    "healthz": "GET /healthz (baseline)",
    "capability": "discovery by capability",
    "text": "discovery by text (q=)",
    "heartbeat": "heartbeat",
    "register": "registration (POST /agents)",
}

# Scenarios measured with several replicas (--replicas), each driven by its own wrk.
REPLICA_SCENARIOS = ["healthz", "capability", "heartbeat", "register"]

# Targets per backend, checked at the largest size of the run (single replica). A key that is
# absent means no target of that kind for the backend.
TARGETS = {
    "sqlite": {"cap_ratio": 0.5, "cap_p99_ms": 5.0, "hb_ratio": 0.5, "rss_mb": 300.0,
               "startup_s": 3.0, "register_rps": 6000.0, "register_p99_ms": 25.0},
    "postgres": {"cap_ratio": 1 / 3, "cap_p99_ms": 10.0, "hb_ratio": 1 / 3, "hb_p99_ms": 10.0,
                 "register_rps": 4000.0},
}

# The local services of the postgres backend (trust authentication).
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_URL = "redis://127.0.0.1:6379"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------

# A few real words keep the data readable; pseudo-words fill the vocabularies to their sizes.
REAL_WORDS = """
summarises legal documents contracts invoices translates speech images answers questions about
billing support tickets routes customer email extracts tables from reports classifies risk in
insurance claims drafts replies searches knowledge base monitors servers alerts on anomalies
schedules meetings books travel reviews code writes tests explains errors forecasts demand
plans inventory detects fraud scores leads transcribes calls tags photos moderates content
generates summaries compares prices tracks shipments audits expenses
""".split()
REAL_TAGS = """
legal nlp finance vision speech support sales security devops healthcare retail logistics hr
marketing research education travel insurance analytics compliance translation search ops
billing coding data ml chat email voice media gaming energy manufacturing crm erp iot
""".split()
CAPABILITY_VERBS = {
    "summarize": "summarise text",
    "translate": "translate between languages",
    "classify": "classify documents",
    "extract": "extract structured data",
    "search": "search a knowledge base",
    "answer": "answer questions",
    "transcribe": "transcribe audio",
    "detect": "detect anomalies",
    "forecast": "forecast a time series",
    "route": "route requests",
    "review": "review code",
    "generate": "generate content",
    "moderate": "moderate content",
    "schedule": "schedule events",
    "monitor": "monitor systems",
    "score": "score leads",
    "plan": "plan tasks",
    "audit": "audit records",
    "tag": "tag media",
    "draft": "draft replies",
}
SYLLABLES = "ka lo mi ra ne to su vi de pa li mo ze tu ba ri no fe ga shi ul en or ax".split()


def pseudo_words(rng: random.Random, count: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < count:
        w = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


@dataclass
class Vocabulary:
    """~1,000 capability names, ~200 tags, a few hundred description words."""

    seed: int
    capabilities: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        taken = set(REAL_WORDS) | set(REAL_TAGS)
        self.words = sorted(set(REAL_WORDS)) + pseudo_words(rng, 300 - len(set(REAL_WORDS)), taken)
        self.tags = sorted(set(REAL_TAGS)) + pseudo_words(rng, 200 - len(set(REAL_TAGS)), taken)
        verbs = list(CAPABILITY_VERBS)
        # i*7919 mod 1000 is a bijection on 0..999, so the 1,000 names are distinct.
        self.capabilities = [f"{verbs[i % len(verbs)]}-{(i * 7919) % 1000:03d}" for i in range(1000)]
        self.owners = [f"team-{i:02d}" for i in range(40)]

    def agent(self, seq: int, owner: str | None = None) -> dict:
        """The registration body of agent number `seq` (deterministic)."""
        rng = random.Random(self.seed * 1_000_003 + seq)
        name = f"agent-{seq:07d}"
        caps = []
        for cap in rng.sample(self.capabilities, rng.randint(1, 3)):
            c: dict = {"name": cap}
            if rng.random() < 0.6:
                c["description"] = CAPABILITY_VERBS[cap.split("-")[0]]
            if rng.random() < 0.4:
                c["tags"] = [rng.choice(self.tags)]
            caps.append(c)
        words = [rng.choice(self.words) for _ in range(rng.randint(4, 9))]
        return {
            "name": name,
            "description": " ".join(words).capitalize(),
            "ownerId": owner or self.owners[seq % len(self.owners)],
            "tags": rng.sample(self.tags, rng.randint(2, 4)),
            "labels": {"team": f"t{seq % 50}", "tier": rng.choice(["gold", "silver", "bronze"])},
            "capabilities": caps,
            # The Persistent endpoint comes first: register.lua records the first endpoint id
            # of each answer as the heartbeat target.
            "endpoints": [
                {
                    "name": "main",
                    "transport": "Http",
                    "protocol": "A2A",
                    "address": f"https://{name}.example/a2a",
                    "livenessModel": "Persistent",
                    "heartbeatIntervalSeconds": 3600,
                },
                {
                    "name": "lease",
                    "transport": "Http",
                    "protocol": "MCP",
                    "address": f"https://{name}.example/mcp",
                    "livenessModel": "Ephemeral",
                    "ttlSeconds": 86400,
                },
            ],
        }

    def capability_queries(self, rng: random.Random) -> list[str]:
        names = list(self.capabilities)
        rng.shuffle(names)
        # Some in upper case: matching is case-insensitive and that path should be exercised.
        return [
            "/discover/agents?capability=" + urllib.parse.quote(n.upper() if i % 4 == 0 else n)
            for i, n in enumerate(names)
        ]

    def text_queries(self, rng: random.Random, count: int = 2000) -> list[str]:
        pools = [(self.words, 0.6), (self.tags, 0.25), (list(CAPABILITY_VERBS), 0.15)]

        def word() -> str:
            r, acc = rng.random(), 0.0
            for pool, weight in pools:
                acc += weight
                if r < acc:
                    break
            w = rng.choice(pool)
            # Half of the words are typed as prefixes, as a search box would send them.
            if len(w) > 4 and rng.random() < 0.5:
                w = w[: rng.randint(4, len(w) - 1)]
            return w

        out = []
        for _ in range(count):
            q = " ".join(word() for _ in range(rng.randint(1, 2)))
            out.append("/discover/agents?q=" + urllib.parse.quote(q))
        return out


# --------------------------------------------------------------------------------------------
# HTTP helpers (untimed checks only; all measurement is done by wrk)
# --------------------------------------------------------------------------------------------


# Management routes need an API key: every server is started with this bootstrap token, and the
# Admin key the first start issues (it stays valid across restarts and replicas) is sent with
# every write, by http_call and by the Lua scripts (BENCH_API_KEY).
BOOTSTRAP_TOKEN = "benchmark-bootstrap-token-0123456789"
API_KEY: str | None = None


def http_call(port: int, method: str, path: str, body: bytes | None = None,
              timeout: float = 30.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if API_KEY and method != "GET":
            headers["X-Api-Key"] = API_KEY
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_json(port: int, method: str, path: str, body: dict | None = None):
    status, data = http_call(port, method, path, None if body is None else json.dumps(body).encode())
    return status, (json.loads(data) if data else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# The server under test and its backends
# --------------------------------------------------------------------------------------------


class SqliteBackend:
    """A fresh SQLite file in the work dir (removed with it)."""

    name = "sqlite"
    # Processes whose CPU is counted as the backends' (none: SQLite runs inside the server).
    services: tuple[str, ...] = ()

    def __init__(self, workdir: Path):
        self.path = workdir / "registry.db"

    def create(self) -> None:
        pass  # the server creates and migrates the file at start

    def server_args(self) -> list[str]:
        return ["--database-url", f"sqlite://{self.path}"]

    def describe(self) -> dict:
        return {"backend": self.name, "database": str(self.path)}

    def stored(self) -> dict:
        """Agents in the database itself (read-only; WAL lets this run beside the server).

        Compared with /readyz, it shows whether the in-memory index and the store agree.
        """
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            total = db.execute("SELECT COUNT(*) FROM agents").fetchone()[0]
            registered = db.execute("SELECT COUNT(*) FROM agents WHERE owner_id = ?",
                                    (REGISTER_OWNER,)).fetchone()[0]
        finally:
            db.close()
        return {"agents": total, "registration_scenario_leftovers": registered}

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))

    def drop(self) -> None:
        pass  # the work dir goes, or stays with --keep

    def service_stats(self) -> dict:
        return {}  # no separate services


class PostgresBackend:
    """A new database on the local PostgreSQL server and a Redis key prefix of its own, so runs
    never see each other's data; both are removed at the end unless --keep."""

    name = "postgres"
    services = ("postgres", "redis-server")

    def __init__(self, token: str):
        self.database = f"bench_{token}"
        self.prefix = f"bench-{token}"
        self.created = False

    def psql(self, sql: str, database: str = "postgres") -> str:
        res = subprocess.run(
            ["psql", "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, "-d", database,
             "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"psql failed ({sql}): {res.stderr.strip()}")
        return res.stdout.strip()

    def create(self) -> None:
        self.psql(f'CREATE DATABASE "{self.database}"')
        self.created = True

    def server_args(self) -> list[str]:
        return [
            "--database-url", f"postgres://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.database}",
            "--auto-migrate", "--redis-url", REDIS_URL, "--redis-key-prefix", self.prefix,
        ]

    def describe(self) -> dict:
        versions = {}
        try:
            versions["postgres"] = self.psql("SHOW server_version")
        except RuntimeError:
            pass
        info = subprocess.run(["redis-cli", "-u", REDIS_URL, "INFO", "server"],
                              capture_output=True, text=True).stdout
        m = re.search(r"redis_version:(\S+)", info)
        if m:
            versions["redis"] = m.group(1)
        return {"backend": self.name, "database": self.database, "redis_key_prefix": self.prefix,
                "versions": versions}

    def stored(self) -> dict:
        row = self.psql("SELECT COUNT(*), COUNT(*) FILTER (WHERE owner_id = "
                        f"'{REGISTER_OWNER}') FROM agents", self.database)
        total, registered = (int(x) for x in row.split("|"))
        return {"agents": total, "registration_scenario_leftovers": registered}

    def size_bytes(self) -> int:
        if not self.created:
            return 0
        return int(self.psql("SELECT pg_database_size(current_database())", self.database))

    def service_stats(self) -> dict:
        """Redis's counters per command (calls, µs); the difference over the run shows what the
        liveness store spent its time on."""
        info = subprocess.run(["redis-cli", "-u", REDIS_URL, "INFO", "commandstats"],
                              capture_output=True, text=True, timeout=60).stdout
        return {m.group(1): {"calls": int(m.group(2)), "usec": int(m.group(3))}
                for m in re.finditer(r"^cmdstat_(\S+?):calls=(\d+),usec=(\d+)", info, re.M)}

    def redis_keys(self) -> list[str]:
        res = subprocess.run(["redis-cli", "-u", REDIS_URL, "--scan", "--pattern",
                              f"{self.prefix}:*"], capture_output=True, text=True, timeout=120)
        return [k for k in res.stdout.splitlines() if k]

    def drop(self) -> None:
        keys = self.redis_keys()
        for i in range(0, len(keys), 500):
            subprocess.run(["redis-cli", "-u", REDIS_URL, "DEL", *keys[i:i + 500]],
                           capture_output=True, check=True, timeout=120)
        if self.created:
            # FORCE: a server killed without a clean shutdown may leave sessions behind.
            self.psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self.created = False
        log(f"dropped database {self.database} and {len(keys)} Redis key(s) {self.prefix}:*")


Backend = SqliteBackend | PostgresBackend


class Server:
    """One `agent-registry serve` process; `label` tells replicas apart in the logs."""

    def __init__(self, binary: Path, backend: Backend, port: int, workdir: Path, log_filter: str,
                 label: str = "server"):
        self.binary, self.backend, self.port, self.workdir = binary, backend, port, workdir
        self.log_filter, self.label = log_filter, label
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.starts = 0

    def start(self, timeout: float = 120.0) -> dict:
        """Spawns the server and waits until it is ready; returns timings from spawn.

        /healthz already answers while the registry is still opening, so readiness is the
        first 200 from /readyz (every backend up and the index loaded).
        """
        self.starts += 1
        self.log_path = self.workdir / f"{self.label}-{self.starts}.log"
        cmd = [
            str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}",
            *self.backend.server_args(),
            "--bootstrap-token", BOOTSTRAP_TOKEN, "--allow-repeated-bootstrap",
            # One load generator is one client with one key: limits far above any rate reached
            # keep the limiters' cost in the figures without refusing requests.
            "--rate-limit-discovery", "1000000000", "--rate-limit-key", "1000000000",
            "--rate-limit-address", "1000000000",
            # The "agent registry listening" line (startup_ms) is logged at info by the server
            # crate; everything else stays at warn, as the brief's `--log warn`.
            "--log", self.log_filter, "--log-format", "json",
            *SERVER_ARGS,
        ]
        meter = CpuMeter([], self.backend.services)
        with open(self.log_path, "wb") as logf:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                         env=os.environ | {"NO_COLOR": "1"})
        meter.pids = [self.proc.pid]
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.proc.returncode}; "
                                   f"see {self.log_path}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{self.label} was not ready (/readyz) within {timeout}s")
            try:
                status, _ = http_call(self.port, "GET", "/readyz", timeout=1.0)
                if status == 200:
                    wall = time.monotonic() - t0
                    break
            except OSError:
                pass
            time.sleep(0.005)
        cpu = meter.stop()
        self._ensure_api_key()
        line = self._listening_line()
        return {
            "wall_s": wall,
            # CPU the server used to start (and the backends' services), and what other
            # processes used meanwhile.
            "cpu": {k: v for k, v in cpu.items() if k in ("server_s", "backends_s", "other_s")},
            "startup_ms": line.get("startup_ms") if line else None,
            "agents_logged": line.get("agents") if line else None,
        }

    def _ensure_api_key(self) -> None:
        """Issues the Admin key the benchmark writes with, once per run."""
        global API_KEY
        if API_KEY:
            return
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", "/api-keys/bootstrap", headers={"X-Bootstrap-Token": BOOTSTRAP_TOKEN})
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        if resp.status != 201:
            raise RuntimeError(f"bootstrap failed: {resp.status} {body[:200]!r}")
        API_KEY = json.loads(body)["key"]

    def _listening_line(self, wait: float = 2.0) -> dict | None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for raw in self.log_path.read_text(errors="replace").splitlines():
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                fields = rec.get("fields", {})
                if fields.get("message") == "agent registry listening":
                    return fields
            time.sleep(0.02)
        return None

    def stop(self, timeout: float = 60.0) -> float:
        """SIGTERM and wait; returns how long the graceful shutdown took."""
        if not self.proc or self.proc.poll() is not None:
            return 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.label} ignored SIGTERM; killing it")
            self.proc.kill()
            self.proc.wait()
        return time.monotonic() - t0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def memory(self) -> dict:
        """VmRSS/VmHWM in MB (10^6 bytes; /proc reports KiB)."""
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(value.split()[0]) * 1024 / 1e6, 1)
        return out

    def agents(self) -> int:
        status, body = http_json(self.port, "GET", "/readyz")
        if status != 200:
            raise RuntimeError(f"{self.label} /readyz answered {status}: {body}")
        return int(body["index"]["agents"])

    def wait_for_agents(self, expected: int, timeout: float = 300.0) -> float:
        """Waits until this server's index holds `expected` agents (a replica following the
        change log); returns how long that took."""
        t0 = time.monotonic()
        while (have := self.agents()) != expected:
            if not self.alive():
                raise RuntimeError(f"{self.label} died; see {self.log_path}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{self.label} holds {have} agents, not {expected}, "
                                   f"after {timeout}s")
            time.sleep(0.05)
        return time.monotonic() - t0


def log_problems(workdir: Path) -> dict:
    """Counts WARN/ERROR lines in every server log of this run (they point at service trouble):
    per level, per log file, and per message with its first and last time and one example."""
    counts: dict = {}
    per_log: dict = {}
    messages: dict = {}
    for p in sorted(workdir.glob("server-*.log")):
        for raw in p.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            level = rec.get("level")
            if level not in ("WARN", "ERROR"):
                continue
            counts[level] = counts.get(level, 0) + 1
            per_log.setdefault(p.name, {})
            per_log[p.name][level] = per_log[p.name].get(level, 0) + 1
            fields = rec.get("fields", {})
            key = f"{level} {fields.get('message', '?')}"
            # The error code, or for sqlx's slow statements which statement.
            detail = fields.get("code") or fields.get("summary")
            if detail:
                key += f" ({detail})"
            at = rec.get("timestamp") or ""
            m = messages.setdefault(key, {"count": 0, "logs": [], "first": at, "last": at,
                                          "example": raw[:400]})
            m["count"] += 1
            m["first"], m["last"] = min(m["first"], at), max(m["last"], at)
            if p.name not in m["logs"]:
                m["logs"].append(p.name)
    return {"counts": counts, "per_log": per_log,
            "messages": dict(sorted(messages.items(), key=lambda kv: -kv[1]["count"]))}


# --------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, children: bool = False) -> float:
    """utime + stime of a process in seconds (plus those of its reaped children)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime + cstime
    return ticks / CLK_TCK


def services_cpu(names: tuple[str, ...]) -> float:
    """CPU seconds of every process whose name is in `names` (PostgreSQL, Redis). A PostgreSQL
    session that ends meanwhile is still counted: its parent's reaped-children time includes it.
    These are all processes of those services, not only this run's."""
    if not names:
        return 0.0
    procs: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "comm").read_text().strip() in names:
                stat = (d / "stat").read_text()
                procs[int(d.name)] = int(stat[stat.rindex(")") + 2:].split()[1])  # ppid
        except (OSError, ValueError):
            continue
    # A service's top process (its parent is not one of them) also carries its children's time.
    return sum(proc_cpu(pid, children=ppid not in procs) for pid, ppid in procs.items())


class CpuMeter:
    """CPU used between construction and stop(): by the servers under test, by the backends'
    services, by this script and its waited children (wrk), and by every other process. On a
    shared machine the last tells a clean run from a disturbed one."""

    def __init__(self, pids: list[int], services: tuple[str, ...] = ()):
        self.pids, self.services = pids, services
        self.t0 = time.monotonic()
        self.before = self._snapshot()

    def _snapshot(self) -> tuple[float, float, float, float]:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
        busy = (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK  # minus idle and iowait
        server = sum(proc_cpu(pid) for pid in self.pids)
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return busy, server, own, services_cpu(self.services)

    def stop(self) -> dict:
        after = self._snapshot()
        busy, server, own, services = (a - b for a, b in zip(after, self.before))
        out = {"elapsed_s": round(time.monotonic() - self.t0, 3), "server_s": round(server, 3),
               "client_s": round(own, 3)}
        if self.services:
            out["backends_s"] = round(services, 3)
        out["other_s"] = round(max(busy - server - own - services, 0.0), 3)
        return out


@dataclass
class Load:
    threads: int
    connections: int
    duration: int
    timeout_s: int


def wrk_version() -> str:
    res = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    first = (res.stdout + res.stderr).splitlines()
    return first[0].split(" Copyright")[0].strip() if first else "unknown"


@dataclass
class WrkProcess:
    proc: subprocess.Popen
    markers: Path
    counted: bool
    bound: int


def start_wrk(port: int, load: Load, script: str, env: dict, workdir: Path,
              counted: bool = False, duration: int | None = None) -> WrkProcess:
    markers = Path(tempfile.mkdtemp(prefix="markers-", dir=workdir))
    bound = 3600 if counted else (duration or load.duration)
    cmd = [
        "wrk", f"-t{load.threads}", f"-c{load.connections}", f"-d{bound}s", "--latency",
        "--timeout", f"{load.timeout_s}s", "-s", str(LUA_DIR / script), f"http://127.0.0.1:{port}",
    ]
    full_env = os.environ | {
        "BENCH_LUA": str(LUA_DIR),
        "BENCH_THREADS": str(load.threads),
        "BENCH_MARKER_DIR": str(markers),
        "BENCH_API_KEY": API_KEY or "",
    } | env
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env)
    return WrkProcess(proc, markers, counted, bound)


def finish_wrk(w: WrkProcess) -> dict:
    """Waits for wrk and returns its BENCH_RESULT numbers plus derived req/s and errors."""
    out, err = w.proc.communicate(timeout=w.bound + 120)
    shutil.rmtree(w.markers, ignore_errors=True)
    m = re.search(r"^BENCH_RESULT (\{.*\})$", out, re.M)
    if not m:
        raise RuntimeError(f"wrk gave no result (exit {w.proc.returncode}):\n{out}\n{err}")
    r = json.loads(m.group(1))
    duration_s = r["duration_us"] / 1e6
    if w.counted and r.get("span_s"):
        # Count-limited: fillers are excluded and wrk's duration includes the stop delay.
        rps = r["counted"] / r["span_s"]
        completed = r["counted"]
    else:
        rps = r["requests"] / duration_s if duration_s else 0.0
        completed = r["requests"]
    non2xx = int(max(r["err_status"], r["non2xx_counted"]))
    socket_errors = int(r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"])
    return {
        "rps": rps,
        "requests": int(completed),
        "duration_s": r["span_s"] if w.counted and r.get("span_s") else duration_s,
        "p50_ms": r["p50_us"] / 1000,
        "p90_ms": r["p90_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "p999_ms": r["p999_us"] / 1000,
        "max_ms": r["lat_max_us"] / 1000,
        "mean_ms": r["lat_mean_us"] / 1000,
        "non2xx": non2xx,
        "socket_errors": socket_errors,
        "timeouts": int(r["err_timeout"]),
        "wraps": int(r.get("wraps") or 0),
        "ok": non2xx == 0 and socket_errors == 0,
        "stderr": err.strip()[:500] or None,
    }


def add_cpu(r: dict, cpu: dict) -> dict:
    """Attaches CPU use; per request it is far less sensitive to noisy neighbours than req/s."""
    done = r["requests"]
    r["cpu"] = cpu
    r["server_cpu_us_per_req"] = cpu["server_s"] * 1e6 / done if done else None
    if "backends_s" in cpu:
        r["backends_cpu_us_per_req"] = cpu["backends_s"] * 1e6 / done if done else None
    return r


def run_wrk(port: int, load: Load, script: str, env: dict, workdir: Path,
            counted: bool = False, duration: int | None = None, watch: Server | None = None) -> dict:
    """Runs wrk once and returns its numbers (finish_wrk), with CPU use if `watch` is given.

    counted=True: the script sends a fixed number of requests and leaves one marker file per
    thread when done; wrk's -d is then only an upper bound and wrk is interrupted (SIGINT makes
    it report normally) as soon as every thread has finished.
    """
    meter = CpuMeter([watch.proc.pid], watch.backend.services) if watch else None
    w = start_wrk(port, load, script, env, workdir, counted, duration)
    if counted:
        while w.proc.poll() is None:
            if len(list(w.markers.iterdir())) >= load.threads:
                w.proc.send_signal(signal.SIGINT)
                break
            if watch is not None and not watch.alive():
                w.proc.kill()
                break
            time.sleep(0.02)
    r = finish_wrk(w)
    return add_cpu(r, meter.stop()) if meter else r


def run_wrk_replicas(servers: list[Server], load: Load, script: str, envs: list[dict],
                     workdir: Path) -> dict:
    """One fixed-duration wrk per replica, all at once, each with its share of the threads and
    connections. Returns the summed req/s and the worst latencies, plus each wrk's numbers."""
    n = len(servers)
    share = Load(max(1, load.threads // n), max(1, load.connections // n), load.duration,
                 load.timeout_s)
    meter = CpuMeter([s.proc.pid for s in servers], servers[0].backend.services)
    procs = [start_wrk(s.port, share, script, env, workdir) for s, env in zip(servers, envs)]
    parts = [finish_wrk(w) for w in procs]
    r = {
        "rps": sum(p["rps"] for p in parts),
        "requests": sum(p["requests"] for p in parts),
        "p50_ms": max(p["p50_ms"] for p in parts),
        "p99_ms": max(p["p99_ms"] for p in parts),
        "non2xx": sum(p["non2xx"] for p in parts),
        "socket_errors": sum(p["socket_errors"] for p in parts),
        "ok": all(p["ok"] for p in parts),
        "load_per_replica": {"threads": share.threads, "connections": share.connections},
        "per_replica": parts,
    }
    return add_cpu(r, meter.stop())


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.load = Load(args.threads, args.connections, args.duration, args.wrk_timeout)
        self.vocab = Vocabulary(args.seed)
        self.rng = random.Random(args.seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="agent-registry-bench-"))
        self.port = args.port or free_port()
        self.backend: Backend = (
            PostgresBackend(f"{os.getpid()}_{int(time.time())}") if args.backend == "postgres"
            else SqliteBackend(self.workdir))
        self.server = Server(Path(args.binary), self.backend, self.port, self.workdir, args.log)
        # Further replicas on the same backends (--replicas), started for their part of a size.
        self.replicas: list[Server] = []
        self.next_seq = 0
        # "agentId\tendpointId" of every seeded agent's Persistent endpoint.
        self.heartbeat_targets: list[tuple[str, str]] = []
        self.capability_use: dict[str, int] = {}
        self.results: dict = {"meta": {}, "sizes": [], "startup": None, "targets": []}

    # -- seeding ------------------------------------------------------------------------------

    def write_bodies(self, path: Path, seqs: range, owner: str | None = None) -> None:
        with open(path, "w") as f:
            for seq in seqs:
                body = self.vocab.agent(seq, owner)
                if owner is None:
                    for c in body["capabilities"]:
                        self.capability_use[c["name"]] = self.capability_use.get(c["name"], 0) + 1
                f.write(json.dumps(body, separators=(",", ":")))
                f.write("\n")

    def seed(self, count: int) -> dict:
        """Registers `count` new agents with wrk, each body exactly once, collecting ids."""
        seqs = range(self.next_seq, self.next_seq + count)
        self.next_seq += count
        bodies = self.workdir / "seed-bodies.jsonl"
        t_gen = time.monotonic()
        self.write_bodies(bodies, seqs)
        log(f"generated {count} bodies in {time.monotonic() - t_gen:.1f}s; registering")
        out_prefix = self.workdir / "seed-ids"
        for old in self.workdir.glob("seed-ids.*"):
            old.unlink()
        t0 = time.monotonic()
        r = run_wrk(self.port, self.load, "register.lua", {
            "BENCH_INPUT": str(bodies), "BENCH_QUOTA": "1", "BENCH_OUT": str(out_prefix),
        }, self.workdir, counted=True, watch=self.server)
        r["wall_s"] = time.monotonic() - t0
        got = 0
        for p in sorted(self.workdir.glob("seed-ids.*")):
            for line in p.read_text().splitlines():
                target = self._heartbeat_target(line)
                if target:
                    self.heartbeat_targets.append(target)
                    got += 1
        r["ids_collected"] = got
        bodies.unlink()
        return r

    @staticmethod
    def _heartbeat_target(line: str) -> tuple[str, str] | None:
        if line.startswith("RAW\t"):
            agent = json.loads(line[4:])
            for e in agent.get("endpoints", []):
                if e.get("livenessModel") == "Persistent":
                    return agent["id"], e["id"]
            return None
        aid, _, eid = line.partition("\t")
        return (aid, eid) if eid else None

    # -- scenario inputs ----------------------------------------------------------------------

    def write_lines(self, name: str, lines: list[str]) -> Path:
        path = self.workdir / name
        path.write_text("\n".join(lines) + "\n")
        return path

    def sample(self, paths: list[str], method: str, n: int, server: Server | None = None) -> dict:
        """Untimed spot check of a scenario's requests: statuses and result sizes."""
        port = (server or self.server).port
        statuses: dict[int, int] = {}
        totals: list[int] = []
        for path in self.rng.sample(paths, min(n, len(paths))):
            status, body = http_call(port, method, path, b"" if method == "POST" else None)
            statuses[status] = statuses.get(status, 0) + 1
            if method == "GET" and status == 200:
                totals.append(json.loads(body).get("totalCount", 0))
        out: dict = {"requests": sum(statuses.values()),
                     "statuses": {str(k): v for k, v in sorted(statuses.items())},
                     "non2xx": sum(v for k, v in statuses.items() if not 200 <= k < 300)}
        if totals:
            out["total_count"] = {
                "mean": round(statistics.mean(totals), 1), "median": statistics.median(totals),
                "min": min(totals), "max": max(totals),
                "empty_pct": round(100 * sum(1 for t in totals if t == 0) / len(totals), 1),
            }
        return out

    # -- registration scenario and its cleanup ------------------------------------------------

    def register_run(self, bodies: Path) -> dict:
        return run_wrk(self.port, self.load, "register.lua", {"BENCH_INPUT": str(bodies)},
                       self.workdir, watch=self.server)

    def remove_registered(self, size: int) -> dict:
        """Deletes every agent the registration scenario created, so the size is exact again."""
        t0 = time.monotonic()
        deleted, failures, rounds = 0, 0, 0
        while rounds < 3:
            rounds += 1
            ids: list[str] = []
            cursor = None
            while True:
                q = {"owner": REGISTER_OWNER, "pageSize": "100"}
                if cursor:
                    q["cursor"] = cursor
                status, page = http_json(self.port, "GET", "/agents?" + urllib.parse.urlencode(q))
                if status != 200:
                    raise RuntimeError(f"listing registered agents failed: {status} {page}")
                ids.extend(item["id"] for item in page["items"])
                cursor = page.get("nextCursor")
                if not cursor:
                    break
            if not ids:
                break
            paths = self.write_lines("delete-paths.txt", [f"/agents/{i}" for i in ids])
            r = run_wrk(self.port, self.load, "rotate.lua", {
                "BENCH_INPUT": str(paths), "BENCH_METHOD": "DELETE", "BENCH_ONCE": "1",
            }, self.workdir, counted=True, watch=self.server)
            deleted += r["requests"]
            failures += r["non2xx"] + r["socket_errors"]
        agents = self.server.agents()
        return {"deleted": deleted, "failures": failures, "wall_s": time.monotonic() - t0,
                "agents_after": agents, "exact": agents == size}

    # -- one size -----------------------------------------------------------------------------

    def run_size(self, size: int) -> dict:
        args = self.args
        res: dict = {"target_agents": size}
        have = self.server.agents()
        need = size - have
        log(f"--- size {size}: registry has {have}, registering {need} ---")
        if need > 0:
            res["seed"] = self.seed(need)
            res["seed"]["from"], res["seed"]["to"] = have, size
            s = res["seed"]
            log(f"seeded {s['requests']} agents in {s['duration_s']:.1f}s = {s['rps']:.0f}/s, "
                f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, non-2xx {s['non2xx']}")
        res["agents"] = self.server.agents()
        time.sleep(args.pause)
        res["rss_after_seed"] = self.server.memory()
        log(f"agents {res['agents']}, memory after seeding {res['rss_after_seed']}")

        cap_paths = self.vocab.capability_queries(self.rng)
        text_paths = self.vocab.text_queries(self.rng)
        hb = list(self.heartbeat_targets)
        self.rng.shuffle(hb)
        hb_paths = [f"/agents/{a}/endpoints/{e}/heartbeat" for a, e in hb]
        lists = {"healthz": (["/healthz"], "GET"), "capability": (cap_paths, "GET"),
                 "text": (text_paths, "GET"), "heartbeat": (hb_paths, "POST")}
        inputs = {name: (self.write_lines(f"{name}.txt", paths), method)
                  for name, (paths, method) in lists.items()}
        res["sanity"] = {
            "capability": self.sample(cap_paths, "GET", 50),
            "text": self.sample(text_paths, "GET", 50),
            "heartbeat": self.sample(hb_paths, "POST", 20),
        }
        log(f"sanity: {json.dumps(res['sanity'])}")

        # One pool of registration bodies per size, reused by every repetition (the agents of
        # a repetition are deleted before the next, so names never collide). Sized from the
        # seeding rate so a run rarely has to wrap around.
        seed_rate = res.get("seed", {}).get("rps") or 5000
        pool = int(min(max(seed_rate * args.duration * 1.5, 2000), 300_000))
        reg_bodies = self.workdir / "register-bodies.jsonl"
        base = 50_000_000 + size
        self.write_bodies(reg_bodies, range(base, base + pool), owner=REGISTER_OWNER)

        runs: dict[str, list] = {s: [] for s in SCENARIOS}
        cleanups = []
        for rep in range(args.reps):
            for scenario in SCENARIOS:
                if not self.server.alive():
                    raise RuntimeError("the server died during the run")
                if scenario == "register":
                    r = self.register_run(reg_bodies)
                    r["pool"] = pool
                else:
                    path, method = inputs[scenario]
                    r = run_wrk(self.port, self.load, "rotate.lua",
                                {"BENCH_INPUT": str(path), "BENCH_METHOD": method}, self.workdir,
                                watch=self.server)
                runs[scenario].append(r)
                log(f"{size} rep {rep + 1} {scenario:10s} {r['rps']:9.0f} req/s  "
                    f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                    f"non-2xx {r['non2xx']}  socket errors {r['socket_errors']}  "
                    f"server {r['server_cpu_us_per_req'] or 0:.0f} µs CPU/req  "
                    f"other processes {r['cpu']['other_s']:.1f} CPU-s")
                if scenario == "register":
                    c = self.remove_registered(size)
                    cleanups.append(c)
                    log(f"removed {c['deleted']} registered agents in {c['wall_s']:.1f}s "
                        f"(agents now {c['agents_after']})")
                time.sleep(args.pause)
        res["cleanups"] = cleanups
        res["rss_after_load"] = self.server.memory()
        res["agents_after_load"] = self.server.agents()
        res["stored_after_load"] = self.backend.stored()
        if res["stored_after_load"]["agents"] != res["agents_after_load"]:
            log(f"index has {res['agents_after_load']} agents but the database "
                f"{res['stored_after_load']}")
        log(f"memory after load {res['rss_after_load']}")
        res["scenarios"] = summarise(runs, res["sanity"])
        if args.replicas > 1:
            res["replicas"] = self.run_replicas(size, lists, reg_bodies, pool, res["scenarios"])
        reg_bodies.unlink()
        return res

    # -- several replicas ---------------------------------------------------------------------

    def run_replicas(self, size: int, lists: dict, reg_bodies: Path, pool: int,
                     single: dict) -> dict:
        """Starts the other replicas on the same database and Redis prefix (the first one has
        seeded), waits until each holds every agent, then drives all of them at once: one wrk
        per replica with its share of the threads and connections."""
        a = self.args
        n = a.replicas
        log(f"--- {n} replicas at {size} agents ---")
        self.replicas = [Server(Path(a.binary), self.backend, free_port(), self.workdir, a.log,
                                label=f"server-r{k}") for k in range(2, n + 1)]
        servers = [self.server] + self.replicas
        out: dict = {"count": n, "starts": []}
        try:
            for s in self.replicas:
                t = s.start()
                t["catch_up_s"] = s.wait_for_agents(size)
                t["rss"] = s.memory()
                out["starts"].append(t)
                log(f"{s.label} ready after {t['wall_s']:.2f}s (startup_ms {t['startup_ms']}), "
                    f"{size} agents after {t['catch_up_s']:.2f}s more")
            # Each replica walks its lists from a different offset, as the threads of one wrk do.
            envs: dict[str, list[dict]] = {}
            for name, (paths, method) in lists.items():
                if name not in REPLICA_SCENARIOS:
                    continue
                envs[name] = []
                for k in range(n):
                    off = len(paths) * k // n
                    path = self.write_lines(f"{name}-r{k + 1}.txt", paths[off:] + paths[:off])
                    envs[name].append({"BENCH_INPUT": str(path), "BENCH_METHOD": method})
            bodies = [reg_bodies]
            for k in range(2, n + 1):
                extra = self.workdir / f"register-bodies-r{k}.jsonl"
                base = 50_000_000 + size + k * 1_000_000
                self.write_bodies(extra, range(base, base + pool), owner=REGISTER_OWNER)
                bodies.append(extra)
            envs["register"] = [{"BENCH_INPUT": str(b)} for b in bodies]

            sanity: dict = {}
            for s in self.replicas:
                for name in ("capability", "heartbeat"):
                    paths, method = lists[name]
                    got = self.sample(paths, method, 20, server=s)
                    sanity.setdefault(name, {"requests": 0, "non2xx": 0})
                    sanity[name]["requests"] += got["requests"]
                    sanity[name]["non2xx"] += got["non2xx"]
            out["sanity"] = sanity
            out["agreement_before"] = self.compare_replicas(servers, lists["capability"][0])

            runs: dict[str, list] = {s: [] for s in REPLICA_SCENARIOS}
            catch_up = []
            for rep in range(a.reps):
                for scenario in REPLICA_SCENARIOS:
                    if not all(s.alive() for s in servers):
                        raise RuntimeError("a replica died during the run")
                    script = "register.lua" if scenario == "register" else "rotate.lua"
                    r = run_wrk_replicas(servers, self.load, script, envs[scenario], self.workdir)
                    runs[scenario].append(r)
                    log(f"{size} x{n} rep {rep + 1} {scenario:10s} {r['rps']:9.0f} req/s  "
                        f"worst p50 {r['p50_ms']:7.2f} ms  worst p99 {r['p99_ms']:7.2f} ms  "
                        f"non-2xx {r['non2xx']}  socket errors {r['socket_errors']}  "
                        f"servers {r['server_cpu_us_per_req'] or 0:.0f} µs CPU/req  "
                        f"backends {r.get('backends_cpu_us_per_req') or 0:.0f} µs CPU/req  "
                        f"other processes {r['cpu']['other_s']:.1f} CPU-s")
                    if scenario == "register":
                        c = self.remove_registered(size)
                        c["replicas_caught_up_s"] = max(s.wait_for_agents(size)
                                                        for s in self.replicas)
                        catch_up.append(c)
                        log(f"removed {c['deleted']} registered agents in {c['wall_s']:.1f}s; "
                            f"replicas back at {size} after {c['replicas_caught_up_s']:.2f}s")
                    time.sleep(a.pause)
            for b in bodies[1:]:
                b.unlink()
            out["cleanups"] = catch_up
            out["agreement_after"] = self.compare_replicas(servers, lists["capability"][0])
            out["rss_after_load"] = {s.label: s.memory() for s in servers}
            out["agents_after_load"] = {s.label: s.agents() for s in servers}
            out["scenarios"] = summarise(runs, sanity, single)
        finally:
            for s in self.replicas:
                s.stop()
        return out

    def compare_replicas(self, servers: list[Server], paths: list[str], n: int = 30) -> dict:
        """Sends the same sampled discovery queries to every replica: their totalCounts must agree."""
        mismatches = 0
        for path in self.rng.sample(paths, min(n, len(paths))):
            counts = set()
            for s in servers:
                status, body = http_call(s.port, "GET", path)
                counts.add((status, json.loads(body).get("totalCount") if status == 200 else None))
            mismatches += len(counts) > 1
        return {"queries": min(n, len(paths)), "mismatches": mismatches}

    # -- start-up -----------------------------------------------------------------------------

    def startup(self) -> dict:
        # The database, not the last /readyz, says how many agents a restart must load.
        expected = self.backend.stored()["agents"]
        runs = []
        for i in range(self.args.startup_runs):
            t = self.server.start()
            t["agents"] = self.server.agents()
            t["rss"] = self.server.memory()
            t["shutdown_s"] = self.server.stop()
            runs.append(t)
            log(f"restart {i + 1}: ready after {t['wall_s']:.3f}s, startup_ms "
                f"{t['startup_ms']}, agents {t['agents']}, shutdown {t['shutdown_s']:.2f}s")
        logged = [r["startup_ms"] for r in runs if r["startup_ms"] is not None]
        return {
            "stored_agents": expected,
            "probe": "/readyz",
            "runs": runs,
            "median_wall_s": statistics.median(r["wall_s"] for r in runs),
            "median_startup_ms": statistics.median(logged) if logged else None,
            "all_agents_loaded": all(r["agents"] == expected for r in runs),
        }

    # -- the whole run ------------------------------------------------------------------------

    def run(self) -> dict:
        a = self.args
        self.results["meta"] = collect_meta(a, self.load)
        log(f"work dir {self.workdir}, port {self.port}, backend {a.backend}")
        stats_before: dict = {}
        try:
            self.results["meta"]["backend"] = self.backend.describe()
            self.backend.create()
            stats_before = self.backend.service_stats()
            first = self.server.start()
            self.results["meta"]["first_start"] = first
            for size in a.sizes:
                self.results["sizes"].append(self.run_size(size))
            self.results["capability_agents"] = distribution(self.capability_use,
                                                              self.vocab.capabilities)
            self.results["shutdown_s_after_load"] = self.server.stop()
            self.results["startup"] = self.startup()
        except BaseException as e:  # still write what was measured
            self.results["error"] = f"{type(e).__name__}: {e}"
            log(f"run failed: {self.results['error']}")
            if not isinstance(e, Exception):
                raise
        finally:
            for s in [self.server] + self.replicas:
                s.stop()
            self.results["server_log"] = log_problems(self.workdir)
            try:
                if stats_before:
                    self.results["redis_commands"] = stats_delta(
                        stats_before, self.backend.service_stats())
                self.results["meta"]["db_bytes"] = self.backend.size_bytes()
                if a.keep:
                    log(f"kept work dir {self.workdir} and the backend's data "
                        f"{self.backend.describe()}")
                else:
                    self.backend.drop()
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                log(f"cleaning up the backend failed: {e}")
            if not a.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)
        self.results["targets"] = check_targets(self.results)
        return self.results


def stats_delta(before: dict, after: dict) -> dict:
    """Per-command calls and µs between two service_stats() snapshots, busiest first."""
    out = {}
    for cmd, a in after.items():
        b = before.get(cmd, {"calls": 0, "usec": 0})
        calls, usec = a["calls"] - b["calls"], a["usec"] - b["usec"]
        if calls > 0:
            out[cmd] = {"calls": calls, "usec": usec, "usec_per_call": round(usec / calls, 2)}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["usec"]))


def summarise(runs: dict[str, list], sanity: dict, single: dict | None = None) -> dict:
    """Medians over the repetitions of each scenario, and ratios to the same runs' /healthz
    (and, for several replicas, to the single replica's figure of the same scenario)."""
    base_rps = statistics.median(r["rps"] for r in runs["healthz"])
    out = {}
    for scenario, rs in runs.items():
        med = {
            "rps": statistics.median(r["rps"] for r in rs),
            "server_cpu_us_per_req": statistics.median(r["server_cpu_us_per_req"] or 0 for r in rs),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
        }
        if any("backends_cpu_us_per_req" in r for r in rs):
            med["backends_cpu_us_per_req"] = statistics.median(
                r.get("backends_cpu_us_per_req") or 0 for r in rs)
        med["ratio_to_healthz"] = med["rps"] / base_rps if base_rps else None
        if single and scenario in single and single[scenario]["median"]["rps"]:
            med["ratio_to_single"] = med["rps"] / single[scenario]["median"]["rps"]
        sample_non2xx = sanity.get(scenario, {}).get("non2xx", 0)
        out[scenario] = {
            "median": med,
            "non2xx": sum(r["non2xx"] for r in rs) + sample_non2xx,
            "socket_errors": sum(r["socket_errors"] for r in rs),
            "ok": all(r["ok"] for r in rs) and sample_non2xx == 0,
            "runs": rs,
        }
    return out


def distribution(counts: dict[str, int], names: list[str]) -> dict:
    values = sorted(counts.get(n, 0) for n in names)
    return {"names": len(names), "min": values[0], "median": statistics.median(values),
            "max": values[-1]}


# --------------------------------------------------------------------------------------------
# Environment, targets, reports
# --------------------------------------------------------------------------------------------


def commit_file(binary: Path) -> Path:
    """Where --build records the commit it built (ignored once the binary is newer)."""
    return binary.with_name(binary.name + ".commit")


def collect_meta(args: argparse.Namespace, load: Load) -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    binary = Path(args.binary)
    # Others commit to the same repository: a binary built before HEAD's commit may not hold it.
    head_time = subprocess.run(["git", "-C", str(REPO_DIR), "log", "-1", "--format=%ct"],
                               capture_output=True, text=True).stdout.strip()
    built = commit_file(binary)
    built_from = (built.read_text().strip()[:7] if built.is_file()
                  and built.stat().st_mtime >= binary.stat().st_mtime else None)
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "nproc": int(nproc) if nproc.isdigit() else os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "git_commit": commit,
        "binary": str(binary),
        "binary_mtime": dt.datetime.fromtimestamp(binary.stat().st_mtime, dt.timezone.utc)
        .isoformat(timespec="seconds"),
        "binary_older_than_commit": head_time.isdigit() and binary.stat().st_mtime < int(head_time),
        "binary_commit": built_from,
        "wrk_version": wrk_version(),
        "python": platform.python_version(),
        "mode": "quick" if args.quick else "full",
        "config": {
            "sizes": args.sizes, "threads": load.threads, "connections": load.connections,
            "duration_s": load.duration, "reps": args.reps, "pause_s": args.pause,
            "wrk_timeout_s": load.timeout_s, "startup_runs": args.startup_runs,
            "log_filter": args.log, "seed": args.seed, "backend": args.backend,
            "replicas": args.replicas, "server_args": SERVER_ARGS,
        },
    }


def backend_name(results: dict) -> str:
    """The run's backend (results written before --backend existed are SQLite runs)."""
    return results["meta"].get("backend", {}).get("backend", "sqlite")


def check_targets(results: dict) -> list[dict]:
    if not results["sizes"] or "scenarios" not in results["sizes"][-1]:
        return []
    t = TARGETS[backend_name(results)]
    last = results["sizes"][-1]
    n = last["agents"]
    sc = last["scenarios"]
    cap, hb, reg = sc["capability"], sc["heartbeat"], sc["register"]
    targets = []
    if "cap_ratio" in t:
        targets.append(
            {"name": f"discovery by capability ≥ {t['cap_ratio']:.2f}× healthz req/s ({n} agents)",
             "value": cap["median"]["ratio_to_healthz"], "limit": t["cap_ratio"],
             "pass": cap["ok"] and cap["median"]["ratio_to_healthz"] >= t["cap_ratio"]})
    if "cap_p99_ms" in t:
        targets.append(
            {"name": f"discovery by capability p99 < {t['cap_p99_ms']} ms ({n} agents)",
             "value": cap["median"]["p99_ms"], "limit": t["cap_p99_ms"],
             "pass": cap["ok"] and cap["median"]["p99_ms"] < t["cap_p99_ms"]})
    if "hb_ratio" in t:
        targets.append(
            {"name": f"heartbeat ≥ {t['hb_ratio']:.2f}× healthz req/s ({n} agents)",
             "value": hb["median"]["ratio_to_healthz"], "limit": t["hb_ratio"],
             "pass": hb["ok"] and hb["median"]["ratio_to_healthz"] >= t["hb_ratio"]})
    if "register_rps" in t:
        targets.append(
            {"name": f"registration ≥ {t['register_rps']:,.0f} req/s ({n} agents, one replica)",
             "value": reg["median"]["rps"], "limit": t["register_rps"],
             "pass": reg["ok"] and reg["median"]["rps"] >= t["register_rps"]})
    if "register_p99_ms" in t:
        targets.append(
            {"name": f"registration p99 ≤ {t['register_p99_ms']:.0f} ms ({n} agents)",
             "value": reg["median"]["p99_ms"], "limit": t["register_p99_ms"],
             "pass": reg["ok"] and reg["median"]["p99_ms"] <= t["register_p99_ms"]})
    if "hb_p99_ms" in t:
        targets.append(
            {"name": f"heartbeat p99 ≤ {t['hb_p99_ms']:.0f} ms ({n} agents)",
             "value": hb["median"]["p99_ms"], "limit": t["hb_p99_ms"],
             "pass": hb["ok"] and hb["median"]["p99_ms"] <= t["hb_p99_ms"]})
    if "rss_mb" in t:
        rss = max(last["rss_after_seed"].get("VmRSS", 0), last["rss_after_load"].get("VmRSS", 0))
        targets.append(
            {"name": f"server VmRSS < {t['rss_mb']:.0f} MB ({n} agents, after seeding and after load)",
             "value": rss, "limit": t["rss_mb"], "pass": 0 < rss < t["rss_mb"]})
    st = results.get("startup")
    if st and "startup_s" in t:
        targets.append({
            "name": f"start-up with {st['stored_agents']} stored agents < {t['startup_s']} s "
                    "(spawn → /readyz 200, median)",
            "value": st["median_wall_s"], "limit": t["startup_s"],
            "pass": st["all_agents_loaded"] and st["median_wall_s"] < t["startup_s"]})
    return targets


def fmt(v, digits=2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def describe_backend(m: dict) -> str:
    b = m.get("backend") or {"backend": "sqlite"}
    if b["backend"] == "postgres":
        v = b.get("versions", {})
        return (f"PostgreSQL {v.get('postgres', '?')} (fresh database `{b['database']}`) with "
                f"Redis {v.get('redis', '?')} liveness (key prefix `{b['redis_key_prefix']}`), "
                "both on this machine")
    extra = " ".join(m.get("config", {}).get("server_args") or [])
    return "SQLite (fresh file in the work dir)" + (f", server run with `{extra}`" if extra else "")


def throughput_rows(agents: int, scenarios: dict, backends: bool, extra=None) -> list[str]:
    """Rows of a throughput table; `extra(name, median)` adds cells after × healthz."""
    rows = []
    for name, sc in scenarios.items():
        med = sc["median"]
        errs = "none" if sc["ok"] else (
            f"**FAIL: {sc['non2xx']} non-2xx, {sc['socket_errors']} socket**")
        per_run = ", ".join(f"{x['rps']:,.0f}" for x in sc["runs"])
        cells = [SCENARIO_TITLES[name], f"{agents:,}", f"{med['rps']:,.0f}",
                 fmt(med["ratio_to_healthz"]), *(extra(name, med) if extra else []),
                 fmt(med["p50_ms"]), fmt(med["p99_ms"]), errs, per_run,
                 fmt(med.get("server_cpu_us_per_req"), 0)]
        if backends:
            cells.append(fmt(med.get("backends_cpu_us_per_req"), 0))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def render_markdown(r: dict) -> str:
    m = r["meta"]
    c = m["config"]
    pg = backend_name(r) == "postgres"
    out = [
        f"# Agent registry benchmark ({m['mode']}, {backend_name(r)})",
        "",
        f"- backend: {describe_backend(m)}",
        f"- date: {m['date']}; commit `{m['git_commit']}` (binary built {m['binary_mtime']}"
        + (f" from `{m['binary_commit']}`" if m.get("binary_commit") else "") + ")"
        + (f" — **the binary was built from `{m['binary_commit']}`, not this commit**"
           if m.get("binary_commit") and m["binary_commit"] != m["git_commit"] else
           " — **the binary is older than this commit and may not contain it**"
           if not m.get("binary_commit") and m.get("binary_older_than_commit") else ""),
        f"- machine: {m['nproc']} CPUs, {m['cpu_model']}, Linux {m['kernel']}",
        f"- load: {m['wrk_version']}; `-t{c['threads']} -c{c['connections']} -d{c['duration_s']}s "
        f"--latency`, {c['reps']} repetition(s) interleaved, medians shown; "
        f"server log filter `{c['log_filter']}`",
        "- registration: separate fixed-duration wrk runs (`register.lua`), interleaved with the "
        "others; the agents they create are deleted afterwards so every scenario runs at the "
        "stated size",
        "",
    ]
    if r.get("error"):
        out += [f"**Run failed:** {r['error']}", ""]
    backend_col = " PostgreSQL + Redis CPU µs/req |" if pg else ""
    out += [
        "## Throughput and latency" + (" (one replica)" if pg else ""),
        "",
        "| scenario | agents | median req/s | × healthz | p50 ms | p99 ms | errors | req/s per run "
        "| server CPU µs/req |" + backend_col,
        "|---|---:|---:|---:|---:|---:|---|---|---:|" + ("---:|" if pg else ""),
    ]
    for s in r["sizes"]:
        out += throughput_rows(s["agents"], s.get("scenarios", {}), pg)
    if pg:
        out += ["", "PostgreSQL + Redis CPU counts every process of those services on the "
                "machine (including other users' sessions, if any)."]
    for s in r["sizes"]:
        rp = s.get("replicas")
        if not rp or "scenarios" not in rp:
            continue
        per = next(iter(rp["scenarios"].values()))["runs"][0]["load_per_replica"]
        out += ["", f"## {rp['count']} replicas, {s['agents']:,} agents", "",
                f"Every replica serves the same database and Redis prefix; one wrk per replica "
                f"(`-t{per['threads']} -c{per['connections']}` each, same duration, started "
                f"together); req/s is the sum, latencies the worse of the wrk processes. "
                f"**All {rp['count']} replicas, the {rp['count']} wrk processes, PostgreSQL and "
                f"Redis share the machine's {m['nproc']} CPUs**, so the sum cannot be expected "
                "to scale with the replicas here; × healthz compares with the same replicas' "
                "/healthz, × 1 replica with the single-replica figure above.",
                "",
                "| scenario | agents | median req/s (sum) | × healthz | × 1 replica | worse p50 ms "
                "| worse p99 ms | errors | req/s per run | servers CPU µs/req | PostgreSQL + "
                "Redis CPU µs/req |",
                "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"]
        out += throughput_rows(s["agents"], rp["scenarios"], True,
                               lambda name, med: [fmt(med.get("ratio_to_single"))])
        out.append("")
        for st_ in rp.get("starts", []):
            out.append(f"- replica started on the filled database: ready after "
                       f"{st_['wall_s']:.2f} s (`startup_ms` {fmt(st_['startup_ms'])}), all "
                       f"agents after {st_['catch_up_s']:.2f} s more; VmRSS "
                       f"{fmt((st_.get('rss') or {}).get('VmRSS'), 1)} MB")
        caught = [c["replicas_caught_up_s"] for c in rp.get("cleanups", [])]
        if caught:
            out.append(f"- after each registration run and its cleanup (on the first replica), "
                       f"the others held the same agents again within "
                       + ", ".join(f"{x:.2f}" for x in caught) + " s")
        for when in ("before", "after"):
            ag = rp.get(f"agreement_{when}")
            if ag:
                out.append(f"- {when} the load, {ag['queries']} discovery queries sent to every "
                           f"replica: {ag['mismatches']} differing totalCount")
        if rp.get("agents_after_load"):
            out.append("- agents after the load: " + ", ".join(
                f"{k} {v:,}" for k, v in rp["agents_after_load"].items()) + "; VmRSS " + ", ".join(
                f"{k} {fmt(v.get('VmRSS'), 1)} MB" for k, v in rp["rss_after_load"].items()))
    out += ["", "## Seeding (count-limited wrk registration, each body once)", "",
            "| agents | agents/s | p50 ms | p99 ms | wall s | errors | server CPU µs/agent "
            "| other processes CPU-s |",
            "|---|---:|---:|---:|---:|---|---:|---:|"]
    for s in r["sizes"]:
        sd = s.get("seed")
        if sd:
            errs = "none" if sd["ok"] else f"{sd['non2xx']} non-2xx, {sd['socket_errors']} socket"
            other = (sd.get("cpu") or {}).get("other_s")
            out.append(f"| {sd['from']:,} → {sd['to']:,} | {sd['rps']:,.0f} | {fmt(sd['p50_ms'])} | "
                       f"{fmt(sd['p99_ms'])} | {fmt(sd['wall_s'], 1)} | {errs} | "
                       f"{fmt(sd.get('server_cpu_us_per_req'), 0)} | {fmt(other, 1)} |")
    out += ["", "## Server memory", "", "| agents | when | VmRSS MB | VmHWM MB |", "|---:|---|---:|---:|"]
    for s in r["sizes"]:
        for when in ("rss_after_seed", "rss_after_load"):
            mem = s.get(when)
            if mem:
                out.append(f"| {s['agents']:,} | {when.replace('rss_', '').replace('_', ' ')} | "
                           f"{fmt(mem.get('VmRSS'), 1)} | {fmt(mem.get('VmHWM'), 1)} |")
    st = r.get("startup")
    if st:
        for i, run_ in enumerate(st["runs"]):
            mem = run_.get("rss") or {}
            out.append(f"| {run_['agents']:,} | right after restart {i + 1} | "
                       f"{fmt(mem.get('VmRSS'), 1)} | {fmt(mem.get('VmHWM'), 1)} |")
    if st:
        walls = ", ".join(f"{x['wall_s']:.3f}" for x in st["runs"])
        logged = ", ".join(str(x["startup_ms"]) for x in st["runs"])
        out += ["", f"## Start-up with {st['stored_agents']:,} stored agents", "",
                f"- spawn → {st.get('probe', '/healthz')} 200: median **{st['median_wall_s']:.3f} s** "
                f"(runs: {walls})",
                f"- `startup_ms` logged by the server: median {fmt(st['median_startup_ms'])} "
                f"(runs: {logged})",
                f"- graceful shutdown after the load: {fmt(r.get('shutdown_s_after_load'))} s; "
                f"every restart loaded all agents: {st['all_agents_loaded']}"]
        if all(x.get("cpu") for x in st["runs"]):
            if pg:
                out.append("- PostgreSQL + Redis CPU meanwhile: " + ", ".join(
                    f"{x['cpu'].get('backends_s', 0):.2f} s" for x in st["runs"]))
            out.append("- server CPU to start: " + ", ".join(
                f"{x['cpu']['server_s']:.2f} s" for x in st["runs"])
                + "; CPU used by other processes meanwhile: " + ", ".join(
                f"{x['cpu']['other_s']:.2f} s" for x in st["runs"]))
    if r["targets"]:
        out += ["", "## Targets", "", "| target | value | limit | result |", "|---|---:|---:|---|"]
        for t in r["targets"]:
            out.append(f"| {t['name']} | {fmt(t['value'])} | {fmt(t['limit'])} | "
                       f"{'PASS' if t['pass'] else '**FAIL**'} |")
    out += ["", "## Checks", ""]
    for s in r["sizes"]:
        san = s.get("sanity", {})
        for name in ("capability", "text"):
            tc = san.get(name, {}).get("total_count")
            if tc:
                out.append(f"- {s['agents']:,} agents, {name}: sampled {san[name]['requests']} "
                           f"queries, totalCount median {tc['median']}, mean {tc['mean']}, "
                           f"max {tc['max']}, empty {tc['empty_pct']}%")
        st_db = s.get("stored_after_load")
        if st_db:
            same = st_db["agents"] == s.get("agents_after_load")
            out.append(f"- {s['agents']:,} agents: after the load the index holds "
                       f"{s.get('agents_after_load'):,} agents and the database {st_db['agents']:,}"
                       + ("" if same else f" (**mismatch**; {st_db['registration_scenario_leftovers']}"
                          " registration-scenario agents are stored but not in the index)"))
        for cl in s.get("cleanups", []):
            if not cl["exact"] or cl["failures"]:
                out.append(f"- {s['agents']:,} agents: cleanup after registration left "
                           f"{cl['agents_after']} agents, {cl['failures']} failures")
    measured = [sc for s in r["sizes"] for sc in s.get("scenarios", {}).values()]
    measured += [sc for s in r["sizes"] for sc in s.get("replicas", {}).get("scenarios", {}).values()]
    noisy = [(x.get("cpu") or {}).get("other_s", 0) / (x.get("cpu") or {}).get("elapsed_s", 1)
             for sc in measured for x in sc["runs"] if x.get("cpu")]
    if noisy:
        out.append(f"- CPU used by other processes during measured runs: at most "
                   f"{100 * max(noisy):.0f}% of one CPU (median {100 * statistics.median(noisy):.0f}%)"
                   " — high values mean a disturbed run")
    if r.get("capability_agents"):
        d = r["capability_agents"]
        out.append(f"- agents per capability name at the end: min {d['min']}, median {d['median']}, "
                   f"max {d['max']} ({d['names']} names)")
    if r.get("redis_commands"):
        out.append("- Redis time per command over the run (the whole Redis server, so other "
                   "clients too): " + ", ".join(
                       f"{cmd.upper()} {x['calls']:,} calls × {x['usec_per_call']:,.1f} µs = "
                       f"{x['usec'] / 1e6:,.1f} s" for cmd, x in
                       list(r["redis_commands"].items())[:5]))
    logp = r.get("server_log", {})
    out.append(f"- server WARN/ERROR log lines: {logp.get('counts') or 'none'}"
               + (f" (per log: {logp['per_log']})" if logp.get("per_log") else ""))
    for msg, x in list(logp.get("messages", {}).items())[:10]:
        span = x["first"][11:23] + (f"–{x['last'][11:23]}" if x["last"] != x["first"] else "")
        out.append(f"  - {x['count']:,}× {msg} ({', '.join(x['logs'])}; {span} UTC)")
    for ex in logp.get("examples", []):  # results written before messages were grouped
        out.append("  - `" + ex[:200].replace("`", "'") + "`")
    out.append(f"- database size at the end: {m.get('db_bytes', 0) / 1e6:,.1f} MB")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.environ.get("AGENT_REGISTRY_BIN", str(DEFAULT_BINARY)))
    p.add_argument("--build", action="store_true",
                   help=f"run `{' '.join(BUILD_COMMAND)}` (target dir {BUILD_TARGET_DIR}) first")
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite",
                   help="sqlite: a fresh file (default); postgres: a fresh database on "
                        f"{PG_HOST}:{PG_PORT} (user {PG_USER}, trust) with Redis liveness at "
                        f"{REDIS_URL} under a key prefix of its own, both removed at the end")
    p.add_argument("--replicas", type=int, default=1,
                   help="postgres only: after each size's scenarios, also drive this many "
                        "replicas on the same database at once (healthz, capability, heartbeat, "
                        "registration)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1,000 then 2,000 agents, 3 s runs, 1 repetition")
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                   help="comma-separated registry sizes, filled in order (default 10000,100000)")
    p.add_argument("--duration", type=int, help="seconds per wrk run (default 10)")
    p.add_argument("--reps", type=int, help="repetitions of each scenario (default 3)")
    p.add_argument("--startup-runs", type=int, help="restarts to time (default 3)")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument for every server, e.g. --server-arg=--sqlite-synchronous=full")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--wrk-timeout", type=int, default=10,
                   help="wrk request timeout in seconds (timed-out requests drop out of wrk's "
                        "latency figures, so it is generous)")
    p.add_argument("--pause", type=float, default=1.0, help="seconds of quiet between runs")
    p.add_argument("--port", type=int, default=0, help="listen port (default: a free one)")
    p.add_argument("--log", default="warn,agent_registry=info", help="server --log filter")
    p.add_argument("--seed", type=int, default=42, help="seed of the synthetic data")
    p.add_argument("--out", help="output path without extension (default results/latest, "
                                 "results/quick with --quick; results/postgres and "
                                 "results/postgres-quick for the postgres backend)")
    p.add_argument("--keep", action="store_true",
                   help="keep the work dir (database, logs) and the PostgreSQL database and "
                        "Redis keys")
    p.add_argument("--render", metavar="JSON",
                   help="only rewrite the markdown next to an existing results JSON")
    a = p.parse_args(argv)
    quick = a.quick
    SERVER_ARGS.extend(a.server_arg)
    a.sizes = a.sizes or ([1000, 2000] if quick else [10_000, 100_000])
    a.duration = a.duration or (3 if quick else 10)
    a.reps = a.reps or (1 if quick else 3)
    a.startup_runs = a.startup_runs or (1 if quick else 3)
    default_out = {("sqlite", False): "latest", ("sqlite", True): "quick",
                   ("postgres", False): "postgres", ("postgres", True): "postgres-quick"}
    a.out = Path(a.out) if a.out else BENCH_DIR / "results" / default_out[a.backend, quick]
    if a.sizes != sorted(a.sizes):
        p.error("--sizes must be increasing: the registry is filled from one size to the next")
    if a.replicas < 1 or (a.replicas > 1 and a.backend != "postgres"):
        p.error("--replicas above 1 needs --backend postgres (replicas share the database)")
    if a.replicas > a.connections:
        p.error("--connections must be at least --replicas")
    return a


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.render:
        src = Path(args.render)
        src.with_suffix(".md").write_text(render_markdown(json.loads(src.read_text())))
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    if args.backend == "postgres":
        missing = [t for t in ("psql", "redis-cli") if shutil.which(t) is None]
        if missing:
            print(f"the postgres backend needs {', '.join(missing)} on PATH", file=sys.stderr)
            return 2
    if args.build:
        log("building the release binary")
        head = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        subprocess.run(BUILD_COMMAND, cwd=REPO_DIR, check=True,
                       env=os.environ | {"CARGO_TARGET_DIR": str(BUILD_TARGET_DIR)})
        if head:  # uncommitted changes in the tree are not recorded
            commit_file(DEFAULT_BINARY).write_text(head + "\n")
    if not Path(args.binary).is_file():
        print(f"no binary at {args.binary}; build it or pass --build/--binary", file=sys.stderr)
        return 2
    results = Bench(args).run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    md = render_markdown(results)
    md_path.write_text(md)
    print(md)
    log(f"wrote {json_path} and {md_path}")
    # Missed targets are findings, not harness failures; errors and non-2xx answers are.
    broken = results.get("error") or any(
        not sc["ok"] for s in results["sizes"]
        for sc in [*s.get("scenarios", {}).values(),
                   *s.get("replicas", {}).get("scenarios", {}).values()])
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
