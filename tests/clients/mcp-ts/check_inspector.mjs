// Drives the MCP Inspector CLI (installed by tests/clients/setup.sh, never downloaded here)
// against a running registry.
//
// Usage: node check_inspector.mjs BASE_URL AGENT_ID
// `tools/list --strict` must report no portability problem (it exits 6 on errors and prints a
// "Warning" per finding); each tool's error path must be printed as an isError result (the CLI
// exits 5 for a tool that returned isError, and something else when it could not read the
// result); a successful call exits 0. Prints "ok" last.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { installed } from "./installed.mjs";

const [base, agentId] = process.argv.slice(2);
const url = `${base}/mcp`;
const pkg = installed.resolve("@modelcontextprotocol/inspector/package.json");
const bin = path.join(path.dirname(pkg), installed(pkg).bin["mcp-inspector"]);

function inspector(...args) {
  const run = spawnSync(process.execPath, [bin, "--cli", url, ...args], { encoding: "utf8", timeout: 60_000 });
  assert.equal(run.error, undefined, `inspector did not run: ${run.error}`);
  return run;
}

const listed = inspector("--method", "tools/list", "--strict");
assert.equal(listed.status, 0, `tools/list --strict: ${listed.stderr}`);
assert.ok(!/warning|error/i.test(listed.stderr), `tools/list --strict reports problems:\n${listed.stderr}`);
const tools = JSON.parse(listed.stdout).tools;
assert.ok(tools.length >= 7, listed.stdout);
console.log(`inspector: tools/list --strict: ${tools.length} tools, no finding`);

const ok = inspector("--method", "tools/call", "--tool-name", "get_agent", "--tool-arg", `id=${agentId}`);
assert.equal(ok.status, 0, ok.stderr);
assert.equal(JSON.parse(ok.stdout).structuredContent.id, agentId);

// [tool, --tool-arg pairs, expected code]
const failures = [
  ["get_agent", ["id=not-a-uuid"], "validation_failed"],
  ["get_agent", ["id=00000000-0000-4000-8000-000000000000"], "agent_not_found"],
  ["discover_agents", ["pageSize=500"], "validation_failed"],
  ["find_agent_for_task", ["task=summarise", "maxResults=99"], "validation_failed"],
  ["get_mcp_server_card", [`id=${agentId}`], "no_protocol_document"],
  ["get_acp_manifest", ["id=no-such-acp-agent"], "agent_not_found"],
  ["get_a2a_card", ["id=not-a-uuid"], "validation_failed"],
  // The task tools need credentials, which this connection has none of.
  ["execute_task", ["capability=summarize-documents", "input=x"], "unauthenticated"],
  ["get_task", ["id=00000000-0000-4000-8000-000000000000"], "unauthenticated"],
];
for (const [tool, pairs, code] of failures) {
  const run = inspector("--method", "tools/call", "--tool-name", tool, "--tool-arg", ...pairs);
  assert.equal(run.status, 5, `${tool} ${pairs}: exit ${run.status}, expected 5 (tool returned isError)\n${run.stdout}\n${run.stderr}`);
  const result = JSON.parse(run.stdout);
  assert.equal(result.isError, true, run.stdout);
  assert.equal(result.structuredContent, undefined, run.stdout);
  assert.ok(result.content[0].text.includes(code), run.stdout);
  console.log(`inspector: ${tool} ${pairs.join(" ")} -> isError ${code}`);
}
console.log("ok");
