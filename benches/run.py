#!/usr/bin/env python3
"""Load benchmark of the agent registry's release binary, in one run.

Starts the binary on a fresh SQLite file, fills it to each size (10,000 then 100,000 agents),
measures /healthz (baseline), discovery by capability, discovery by text, heartbeats and
registration with wrk, reads the server's RSS, then measures start-up on the filled database.
Writes results/latest.json and results/latest.md. Standard library only; needs `wrk` on PATH.
See README.md for usage.
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

# Targets, checked at the largest size of the run.
TARGET_CAP_RATIO = 0.5
TARGET_CAP_P99_MS = 5.0
TARGET_HB_RATIO = 0.5
TARGET_RSS_MB = 300.0
TARGET_STARTUP_S = 3.0


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


def http_call(port: int, method: str, path: str, body: bytes | None = None,
              timeout: float = 30.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
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
# The server under test
# --------------------------------------------------------------------------------------------


class Server:
    def __init__(self, binary: Path, db: Path, port: int, workdir: Path, log_filter: str):
        self.binary, self.db, self.port, self.workdir = binary, db, port, workdir
        self.log_filter = log_filter
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.starts = 0

    def start(self, timeout: float = 120.0) -> dict:
        """Spawns the server and waits for /healthz; returns timings from spawn."""
        self.starts += 1
        self.log_path = self.workdir / f"server-{self.starts}.log"
        cmd = [
            str(self.binary), "--listen", f"127.0.0.1:{self.port}",
            "--database-url", f"sqlite://{self.db}",
            # The "agent registry listening" line (startup_ms) is logged at info by the server
            # crate; everything else stays at warn, as the brief's `--log warn`.
            "--log", self.log_filter, "--log-format", "json",
        ]
        busy0, _, own0 = cpu_snapshot(-1)
        with open(self.log_path, "wb") as logf:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                         env=os.environ | {"NO_COLOR": "1"})
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"server did not answer /healthz within {timeout}s")
            try:
                status, _ = http_call(self.port, "GET", "/healthz", timeout=1.0)
                if status == 200:
                    wall = time.monotonic() - t0
                    break
            except OSError:
                pass
            time.sleep(0.005)
        busy1, server_cpu, own1 = cpu_snapshot(self.proc.pid)
        line = self._listening_line()
        return {
            "wall_s": wall,
            # CPU the server used to start, and what other processes used meanwhile.
            "cpu": {"server_s": round(server_cpu, 3),
                    "other_s": round(max(busy1 - busy0 - server_cpu - (own1 - own0), 0.0), 3)},
            "startup_ms": line.get("startup_ms") if line else None,
            "agents_logged": line.get("agents") if line else None,
        }

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
            log("server ignored SIGTERM; killing it")
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
            raise RuntimeError(f"/readyz answered {status}: {body}")
        return int(body["agents"])

    def stored(self) -> dict:
        """Agents in the database itself (read-only; WAL lets this run beside the server).

        Compared with /readyz, it shows whether the in-memory index and the store agree.
        """
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            total = db.execute("SELECT COUNT(*) FROM agents").fetchone()[0]
            registered = db.execute("SELECT COUNT(*) FROM agents WHERE owner_id = ?",
                                    (REGISTER_OWNER,)).fetchone()[0]
        finally:
            db.close()
        return {"agents": total, "registration_scenario_leftovers": registered}

    def log_problems(self) -> dict:
        """Counts WARN/ERROR lines in every log of this run (they point at service trouble)."""
        counts: dict = {}
        examples: list[str] = []
        for p in sorted(self.workdir.glob("server-*.log")):
            for raw in p.read_text(errors="replace").splitlines():
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                level = rec.get("level")
                if level in ("WARN", "ERROR"):
                    counts[level] = counts.get(level, 0) + 1
                    if len(examples) < 5:
                        examples.append(raw[:300])
        return {"counts": counts, "examples": examples}


# --------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_snapshot(server_pid: int) -> tuple[float, float, float]:
    """(busy CPU seconds of the whole machine, of the server, of this script and its waited
    children, i.e. wrk). The difference over a run is what other processes used: on a shared
    machine that tells a clean run from a disturbed one.
    """
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK  # minus idle and iowait
    try:
        stat = Path(f"/proc/{server_pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        server = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    except (OSError, ValueError):
        server = 0.0
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    return busy, server, own


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


def run_wrk(port: int, load: Load, script: str, env: dict, workdir: Path,
            counted: bool = False, duration: int | None = None, watch: Server | None = None) -> dict:
    """Runs wrk once and returns its BENCH_RESULT numbers plus derived req/s and errors.

    counted=True: the script sends a fixed number of requests and leaves one marker file per
    thread when done; wrk's -d is then only an upper bound and wrk is interrupted (SIGINT makes
    it report normally) as soon as every thread has finished.
    """
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
    } | env
    before = cpu_snapshot(watch.proc.pid) if watch else None
    t_start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env)
    if counted:
        while proc.poll() is None:
            if len(list(markers.iterdir())) >= load.threads:
                proc.send_signal(signal.SIGINT)
                break
            if watch is not None and not watch.alive():
                proc.kill()
                break
            time.sleep(0.02)
    out, err = proc.communicate(timeout=bound + 120)
    cpu = None
    if before:
        elapsed = time.monotonic() - t_start
        after = cpu_snapshot(watch.proc.pid)
        busy, server, own = (a - b for a, b in zip(after, before))
        cpu = {"elapsed_s": round(elapsed, 3), "server_s": round(server, 3),
               "client_s": round(own, 3), "other_s": round(max(busy - server - own, 0.0), 3)}
    shutil.rmtree(markers, ignore_errors=True)
    m = re.search(r"^BENCH_RESULT (\{.*\})$", out, re.M)
    if not m:
        raise RuntimeError(f"wrk gave no result (exit {proc.returncode}):\n{out}\n{err}")
    r = json.loads(m.group(1))
    duration_s = r["duration_us"] / 1e6
    if counted and r.get("span_s"):
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
        "duration_s": r["span_s"] if counted and r.get("span_s") else duration_s,
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
        # Server CPU per request is far less sensitive to noisy neighbours than req/s.
        "server_cpu_us_per_req": (cpu["server_s"] * 1e6 / completed) if cpu and completed else None,
        "cpu": cpu,
        "stderr": err.strip()[:500] or None,
    }


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
        self.server = Server(Path(args.binary), self.workdir / "registry.db", self.port,
                             self.workdir, args.log)
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

    def sample(self, paths: list[str], method: str, n: int) -> dict:
        """Untimed spot check of a scenario's requests: statuses and result sizes."""
        statuses: dict[int, int] = {}
        totals: list[int] = []
        for path in self.rng.sample(paths, min(n, len(paths))):
            status, body = http_call(self.port, method, path, b"" if method == "POST" else None)
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
        inputs = {
            "healthz": (self.write_lines("healthz.txt", ["/healthz"]), "GET"),
            "capability": (self.write_lines("capability.txt", cap_paths), "GET"),
            "text": (self.write_lines("text.txt", text_paths), "GET"),
            "heartbeat": (self.write_lines("heartbeat.txt", hb_paths), "POST"),
        }
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
        reg_bodies.unlink()
        res["cleanups"] = cleanups
        res["rss_after_load"] = self.server.memory()
        res["agents_after_load"] = self.server.agents()
        res["stored_after_load"] = self.server.stored()
        if res["stored_after_load"]["agents"] != res["agents_after_load"]:
            log(f"index has {res['agents_after_load']} agents but the database "
                f"{res['stored_after_load']}")
        log(f"memory after load {res['rss_after_load']}")

        base_rps = statistics.median(r["rps"] for r in runs["healthz"])
        res["scenarios"] = {}
        for scenario in SCENARIOS:
            rs = runs[scenario]
            med = {
                "rps": statistics.median(r["rps"] for r in rs),
                "server_cpu_us_per_req": statistics.median(
                    r["server_cpu_us_per_req"] or 0 for r in rs),
                "p50_ms": statistics.median(r["p50_ms"] for r in rs),
                "p99_ms": statistics.median(r["p99_ms"] for r in rs),
            }
            med["ratio_to_healthz"] = med["rps"] / base_rps if base_rps else None
            sample_non2xx = res["sanity"].get(scenario, {}).get("non2xx", 0)
            res["scenarios"][scenario] = {
                "median": med,
                "non2xx": sum(r["non2xx"] for r in rs) + sample_non2xx,
                "socket_errors": sum(r["socket_errors"] for r in rs),
                "ok": all(r["ok"] for r in rs) and sample_non2xx == 0,
                "runs": rs,
            }
        return res

    # -- start-up -----------------------------------------------------------------------------

    def startup(self) -> dict:
        # The database, not the last /readyz, says how many agents a restart must load.
        expected = self.server.stored()["agents"]
        runs = []
        for i in range(self.args.startup_runs):
            t = self.server.start()
            t["agents"] = self.server.agents()
            t["rss"] = self.server.memory()
            t["shutdown_s"] = self.server.stop()
            runs.append(t)
            log(f"restart {i + 1}: /healthz after {t['wall_s']:.3f}s, startup_ms "
                f"{t['startup_ms']}, agents {t['agents']}, shutdown {t['shutdown_s']:.2f}s")
        logged = [r["startup_ms"] for r in runs if r["startup_ms"] is not None]
        return {
            "stored_agents": expected,
            "runs": runs,
            "median_wall_s": statistics.median(r["wall_s"] for r in runs),
            "median_startup_ms": statistics.median(logged) if logged else None,
            "all_agents_loaded": all(r["agents"] == expected for r in runs),
        }

    # -- the whole run ------------------------------------------------------------------------

    def run(self) -> dict:
        a = self.args
        self.results["meta"] = collect_meta(a, self.load)
        log(f"work dir {self.workdir}, port {self.port}")
        try:
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
            self.server.stop()
            self.results["server_log"] = self.server.log_problems()
            db_files = list(self.workdir.glob("registry.db*"))
            self.results["meta"]["db_bytes"] = sum(p.stat().st_size for p in db_files)
            if a.keep:
                log(f"kept work dir {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
        self.results["targets"] = check_targets(self.results)
        return self.results


def distribution(counts: dict[str, int], names: list[str]) -> dict:
    values = sorted(counts.get(n, 0) for n in names)
    return {"names": len(names), "min": values[0], "median": statistics.median(values),
            "max": values[-1]}


# --------------------------------------------------------------------------------------------
# Environment, targets, reports
# --------------------------------------------------------------------------------------------


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
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "nproc": int(nproc) if nproc.isdigit() else os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "git_commit": commit,
        "binary": str(binary),
        "binary_mtime": dt.datetime.fromtimestamp(binary.stat().st_mtime, dt.timezone.utc)
        .isoformat(timespec="seconds"),
        "wrk_version": wrk_version(),
        "python": platform.python_version(),
        "mode": "quick" if args.quick else "full",
        "config": {
            "sizes": args.sizes, "threads": load.threads, "connections": load.connections,
            "duration_s": load.duration, "reps": args.reps, "pause_s": args.pause,
            "wrk_timeout_s": load.timeout_s, "startup_runs": args.startup_runs,
            "log_filter": args.log, "seed": args.seed,
        },
    }


def check_targets(results: dict) -> list[dict]:
    if not results["sizes"] or "scenarios" not in results["sizes"][-1]:
        return []
    last = results["sizes"][-1]
    n = last["agents"]
    sc = last["scenarios"]
    cap, hb = sc["capability"], sc["heartbeat"]
    rss = max(last["rss_after_seed"].get("VmRSS", 0), last["rss_after_load"].get("VmRSS", 0))
    targets = [
        {"name": f"discovery by capability ≥ {TARGET_CAP_RATIO}× healthz req/s ({n} agents)",
         "value": cap["median"]["ratio_to_healthz"], "limit": TARGET_CAP_RATIO,
         "pass": cap["ok"] and cap["median"]["ratio_to_healthz"] >= TARGET_CAP_RATIO},
        {"name": f"discovery by capability p99 < {TARGET_CAP_P99_MS} ms ({n} agents)",
         "value": cap["median"]["p99_ms"], "limit": TARGET_CAP_P99_MS,
         "pass": cap["ok"] and cap["median"]["p99_ms"] < TARGET_CAP_P99_MS},
        {"name": f"heartbeat ≥ {TARGET_HB_RATIO}× healthz req/s ({n} agents)",
         "value": hb["median"]["ratio_to_healthz"], "limit": TARGET_HB_RATIO,
         "pass": hb["ok"] and hb["median"]["ratio_to_healthz"] >= TARGET_HB_RATIO},
        {"name": f"server VmRSS < {TARGET_RSS_MB:.0f} MB ({n} agents, after seeding and after load)",
         "value": rss, "limit": TARGET_RSS_MB, "pass": 0 < rss < TARGET_RSS_MB},
    ]
    st = results.get("startup")
    if st:
        targets.append({
            "name": f"start-up with {st['stored_agents']} stored agents < {TARGET_STARTUP_S} s "
                    "(spawn → /healthz 200, median)",
            "value": st["median_wall_s"], "limit": TARGET_STARTUP_S,
            "pass": st["all_agents_loaded"] and st["median_wall_s"] < TARGET_STARTUP_S})
    return targets


def fmt(v, digits=2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def render_markdown(r: dict) -> str:
    m = r["meta"]
    c = m["config"]
    out = [
        f"# Agent registry benchmark ({m['mode']})",
        "",
        f"- date: {m['date']}; commit `{m['git_commit']}` (binary built {m['binary_mtime']})",
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
    out += [
        "## Throughput and latency",
        "",
        "| scenario | agents | median req/s | × healthz | p50 ms | p99 ms | errors | req/s per run "
        "| server CPU µs/req |",
        "|---|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for s in r["sizes"]:
        for name, sc in s.get("scenarios", {}).items():
            med = sc["median"]
            errs = "none" if sc["ok"] else (
                f"**FAIL: {sc['non2xx']} non-2xx, {sc['socket_errors']} socket**")
            per_run = ", ".join(f"{x['rps']:,.0f}" for x in sc["runs"])
            out.append(
                f"| {SCENARIO_TITLES[name]} | {s['agents']:,} | {med['rps']:,.0f} | "
                f"{fmt(med['ratio_to_healthz'])} | {fmt(med['p50_ms'])} | {fmt(med['p99_ms'])} | "
                f"{errs} | {per_run} | {fmt(med.get('server_cpu_us_per_req'), 0)} |")
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
                f"- spawn → /healthz 200: median **{st['median_wall_s']:.3f} s** (runs: {walls})",
                f"- `startup_ms` logged by the server: median {fmt(st['median_startup_ms'])} "
                f"(runs: {logged})",
                f"- graceful shutdown after the load: {fmt(r.get('shutdown_s_after_load'))} s; "
                f"every restart loaded all agents: {st['all_agents_loaded']}"]
        if all(x.get("cpu") for x in st["runs"]):
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
    noisy = [(x.get("cpu") or {}).get("other_s", 0) / (x.get("cpu") or {}).get("elapsed_s", 1)
             for s in r["sizes"] for sc in s.get("scenarios", {}).values() for x in sc["runs"]
             if x.get("cpu")]
    if noisy:
        out.append(f"- CPU used by other processes during measured runs: at most "
                   f"{100 * max(noisy):.0f}% of one CPU (median {100 * statistics.median(noisy):.0f}%)"
                   " — high values mean a disturbed run")
    if r.get("capability_agents"):
        d = r["capability_agents"]
        out.append(f"- agents per capability name at the end: min {d['min']}, median {d['median']}, "
                   f"max {d['max']} ({d['names']} names)")
    logp = r.get("server_log", {})
    out.append(f"- server WARN/ERROR log lines: {logp.get('counts') or 'none'}")
    out.append(f"- database size at the end: {m.get('db_bytes', 0) / 1e6:,.1f} MB")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--binary", default=os.environ.get("AGENT_REGISTRY_BIN", str(DEFAULT_BINARY)))
    p.add_argument("--build", action="store_true",
                   help=f"run `{' '.join(BUILD_COMMAND)}` (target dir {BUILD_TARGET_DIR}) first")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1,000 then 2,000 agents, 3 s runs, 1 repetition")
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                   help="comma-separated registry sizes, filled in order (default 10000,100000)")
    p.add_argument("--duration", type=int, help="seconds per wrk run (default 10)")
    p.add_argument("--reps", type=int, help="repetitions of each scenario (default 3)")
    p.add_argument("--startup-runs", type=int, help="restarts to time (default 3)")
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
                                 "or results/quick with --quick)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (database, logs)")
    p.add_argument("--render", metavar="JSON",
                   help="only rewrite the markdown next to an existing results JSON")
    a = p.parse_args(argv)
    quick = a.quick
    a.sizes = a.sizes or ([1000, 2000] if quick else [10_000, 100_000])
    a.duration = a.duration or (3 if quick else 10)
    a.reps = a.reps or (1 if quick else 3)
    a.startup_runs = a.startup_runs or (1 if quick else 3)
    a.out = Path(a.out) if a.out else BENCH_DIR / "results" / ("quick" if quick else "latest")
    if a.sizes != sorted(a.sizes):
        p.error("--sizes must be increasing: the registry is filled from one size to the next")
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
    if args.build:
        log("building the release binary")
        subprocess.run(BUILD_COMMAND, cwd=REPO_DIR, check=True,
                       env=os.environ | {"CARGO_TARGET_DIR": str(BUILD_TARGET_DIR)})
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
        not sc["ok"] for s in results["sizes"] for sc in s.get("scenarios", {}).values())
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
