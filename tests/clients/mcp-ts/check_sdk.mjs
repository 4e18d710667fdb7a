// Drives the TypeScript MCP SDK's client (the one VS Code, Claude Desktop and most hosts use)
// against a running registry.
//
// Usage: node check_sdk.mjs BASE_URL AGENT_ID API_KEY
// Connects over Streamable HTTP, lists the tools, calls each one (callTool checks every
// structuredContent against the tool's outputSchema), then calls each tool on its error paths:
// every failure must come back as an isError result (not a thrown McpError) whose text names the
// error code and each JSON pointer. The task tools need credentials: they are called without
// (unauthenticated) and with the API key on the connection. Prints "ok" last.

import assert from "node:assert/strict";
import { load } from "./installed.mjs";

const { Client } = await load("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = await load("@modelcontextprotocol/sdk/client/streamableHttp.js");

const [base, agentId, apiKey] = process.argv.slice(2);
const unknownId = "00000000-0000-4000-8000-000000000000";

const client = new Client({ name: "registry-ts-check", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`)));
console.log(`ts-sdk: connected, protocol ${client.transport.protocolVersion ?? "?"}`);

const { tools } = await client.listTools();
const names = tools.map((t) => t.name);
for (const expected of ["find_agent_for_task", "discover_agents", "get_agent", "get_a2a_card",
  "get_mcp_server_card", "get_acp_manifest", "list_capabilities", "execute_task", "get_task"]) {
  assert.ok(names.includes(expected), `${expected} missing from ${names}`);
}

const successes = [
  ["find_agent_for_task", { task: "summarise a contract" }],
  ["discover_agents", { capability: "summarize-documents", liveOnly: false }],
  ["get_agent", { id: agentId }],
  ["get_a2a_card", { id: agentId }],
  ["list_capabilities", {}],
];
for (const [name, args] of successes) {
  const result = await client.callTool({ name, arguments: args });
  assert.notEqual(result.isError, true, `${name}: ${JSON.stringify(result)}`);
  assert.ok(result.structuredContent, `${name}: structuredContent`);
  console.log(`ts-sdk: ${name} -> ${JSON.stringify(result.structuredContent).slice(0, 70)}`);
}

// [tool, arguments, expected code, pointer the text must name (or null)]
const failures = [
  ["get_agent", { id: unknownId }, "agent_not_found", null],
  ["get_agent", { id: "not-a-uuid" }, "validation_failed", "/id"],
  ["get_agent", {}, "validation_failed", "/id"],
  ["discover_agents", { pageSize: 500 }, "validation_failed", "/pageSize"],
  ["discover_agents", { protocol: "Carrier-Pigeon" }, "validation_failed", "/protocol"],
  ["discover_agents", { colour: "blue" }, "validation_failed", "/colour"],
  ["find_agent_for_task", { task: "x", maxResults: 99 }, "validation_failed", "/maxResults"],
  ["find_agent_for_task", { task: "" }, "validation_failed", "/task"],
  ["get_a2a_card", { id: "not-a-uuid" }, "validation_failed", "/id"],
  ["get_mcp_server_card", { id: agentId }, "no_protocol_document", null],
  ["get_acp_manifest", { id: "no-such-acp-agent" }, "agent_not_found", null],
  ["list_capabilities", { liveOnly: "yes" }, "validation_failed", "/liveOnly"],
  ["execute_task", { tool: "summarize-documents", input: "x" }, "unauthenticated", null],
  ["get_task", { id: unknownId }, "unauthenticated", null],
];
await expectFailures(client, failures);

// The task tools with credentials: a task the TypeScript SDK checks against execute_task's and
// get_task's outputSchema (it is still running or has failed: the agent's address is not real),
// then their error paths.
const authed = new Client({ name: "registry-ts-check", version: "1.0.0" });
await authed.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`),
  { requestInit: { headers: { "X-Api-Key": apiKey } } }));
const sent = await authed.callTool({ name: "execute_task",
  arguments: { capability: "summarize-documents", input: "x", waitSeconds: 0 } });
assert.notEqual(sent.isError, true, `execute_task: ${JSON.stringify(sent)}`);
const taskId = sent.structuredContent.id;
const read = await authed.callTool({ name: "get_task", arguments: { id: taskId } });
assert.notEqual(read.isError, true, `get_task: ${JSON.stringify(read)}`);
assert.equal(read.structuredContent.id, taskId);
console.log(`ts-sdk: execute_task -> ${sent.structuredContent.state}, get_task -> ${read.structuredContent.state}`);
await expectFailures(authed, [
  ["execute_task", { input: "x" }, "validation_failed", "/capability"],
  ["execute_task", { capability: "summarize-documents", input: 5 }, "validation_failed", "/input"],
  ["execute_task", { capability: "summarize-documents", input: "x", waitSeconds: 99 }, "validation_failed", "/waitSeconds"],
  ["execute_task", { capability: "nobody", input: "x" }, "no_live_agent", null],
  ["get_task", { id: "not-a-uuid" }, "validation_failed", "/id"],
  ["get_task", { id: unknownId }, "task_not_found", null],
]);
await authed.close();

async function expectFailures(client, failures) {
for (const [name, args, code, pointer] of failures) {
  let result;
  try {
    result = await client.callTool({ name, arguments: args });
  } catch (e) {
    assert.fail(`${name} ${JSON.stringify(args)} threw instead of returning an isError result: ${e}`);
  }
  assert.equal(result.isError, true, `${name}: ${JSON.stringify(result)}`);
  assert.equal(result.structuredContent, undefined, `${name}: no structuredContent on errors`);
  const text = result.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
  assert.ok(text.includes(code), `${name}: the text names ${code}: ${text}`);
  if (pointer) assert.ok(text.includes(pointer), `${name}: the text names ${pointer}: ${text}`);
  assert.equal(result._meta?.["agent-registry/error"]?.code, code, `${name}: _meta`);
  console.log(`ts-sdk: ${name} ${JSON.stringify(args)} -> isError ${code}`);
}
}

// A tool that does not exist is a protocol error (JSON-RPC), which callTool throws.
await assert.rejects(client.callTool({ name: "no_such_tool", arguments: {} }));
await client.close();
console.log("ok");
