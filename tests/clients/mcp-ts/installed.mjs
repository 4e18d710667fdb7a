// The npm packages of this folder are installed outside the checkout by tests/clients/setup.sh
// (so clean clones reuse them); the directory comes in AGENT_REGISTRY_NODE_PACKAGES. ES module
// imports do not search such a directory, so modules are resolved from it explicitly.

import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.env.AGENT_REGISTRY_NODE_PACKAGES;
if (!dir) throw new Error("AGENT_REGISTRY_NODE_PACKAGES names the directory setup.sh installed into");

/** `require` as seen from the installed package.json. */
export const installed = createRequire(path.join(dir, "package.json"));

/** Imports an installed module by its package specifier. */
export async function load(specifier) {
  return import(pathToFileURL(installed.resolve(specifier)).href);
}
