// Drives @a2a-js/sdk (the version pinned in package.json) against a running registry: for every
// registered card, the default card resolver and client factory, then both with the v0.3
// compatibility layer (`legacyCompat`), each at the agent's A2A base URL as the registry hands
// it out (`<registry>/a2a/agents/{id}/`).
//
// Usage: node check_cards.mjs SDK_DIR BASE_URL AGENTS_JSON
// AGENTS_JSON is a list of {id, name, file, signed, shape} ("v1", "v03" or "dual"). Each check
// prints one line; the first failure exits non-zero. The last line is `ok`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [sdkDir, base, agentsJson] = process.argv.slice(2);
const sdkRoot = join(sdkDir, 'node_modules', '@a2a-js', 'sdk');
const pkg = JSON.parse(readFileSync(join(sdkRoot, 'package.json'), 'utf8'));
const entry = pkg.exports['./client'].import;
const { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory, RestTransportFactory } =
  await import(pathToFileURL(join(sdkRoot, entry)).href);

function check(condition, message) {
  if (!condition) {
    console.log(`FAILED: ${message}`);
    process.exit(1);
  }
}

const legacy = { legacyCompat: { enabled: true } };
const legacyResolver = new DefaultAgentCardResolver(legacy);
const legacyFactory = new ClientFactory(
  ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory(legacy), new RestTransportFactory(legacy)],
    cardResolver: legacyResolver,
  })
);

for (const agent of JSON.parse(agentsJson)) {
  const url = `${base}/a2a/agents/${agent.id}/`;
  const label = `${agent.file} (${agent.shape}${agent.signed ? ', signed' : ''})`;

  const card = await new DefaultAgentCardResolver().resolve(url);
  check(card.name === agent.name, `${label}: resolved ${card.name}`);
  // A signed v0.3 card is served as signed (a v1 member added would break its signature), and
  // the default v1.0 client finds no interface in it: that is what legacyCompat is for.
  const usableByDefault = !(agent.signed && agent.shape === 'v03');
  try {
    const client = await new ClientFactory().createFromUrl(url);
    check(usableByDefault, `${label}: the default factory was expected to refuse a signed v0.3 card`);
    check(client, `${label}: a client`);
    console.log(`a2a-js default: ${label}: ${card.supportedInterfaces.map((i) => `${i.protocolBinding} ${i.protocolVersion}`).join(', ')}`);
  } catch (e) {
    check(!usableByDefault && /No compatible transport/.test(e.message), `${label}: default factory: ${e.message}`);
    console.log(`a2a-js default: ${label}: no v1.0 interface, as documented (${e.message.split(',')[0]})`);
  }

  const compatCard = await legacyResolver.resolve(url);
  check(compatCard.name === agent.name, `${label}: legacyCompat resolved ${compatCard.name}`);
  check(compatCard.supportedInterfaces.length > 0, `${label}: legacyCompat interfaces`);
  const client = await legacyFactory.createFromUrl(url);
  check(client, `${label}: legacyCompat client`);
  console.log(`a2a-js legacyCompat: ${label}: ${compatCard.supportedInterfaces.map((i) => `${i.protocolBinding} ${i.protocolVersion}`).join(', ')}`);
}
console.log('ok');
