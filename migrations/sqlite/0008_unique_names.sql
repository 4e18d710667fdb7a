-- Names an agent holds alone (an ACP name; an MCP server's name and version): granted when
-- the agent is registered, released when it is removed. The primary key refuses a second
-- holder, whatever the index believed.
CREATE TABLE unique_names (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    agent_id   TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    PRIMARY KEY (namespace, name)
);
CREATE INDEX unique_names_agent_id ON unique_names (agent_id);
