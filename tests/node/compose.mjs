// Composes integrity-gateway's subgraph SDL (as `_service { sdl }` answered it) with a
// second subgraph that extends Enterprise, using Apollo's composition library.
// `node compose.mjs <our sdl file> <other sdl file>`
// Prints {"errors": [...], "supergraph": "..."} as JSON.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { composeServices } = require("@apollo/composition");
const { parse } = require("graphql");

const [ours, theirs] = process.argv.slice(2);
const result = composeServices([
  { name: "integrity-gateway", typeDefs: parse(readFileSync(ours, "utf8")), url: "http://integrity-gateway/graphql" },
  { name: "credit", typeDefs: parse(readFileSync(theirs, "utf8")), url: "http://credit/graphql" },
]);
process.stdout.write(
  JSON.stringify({
    errors: (result.errors ?? []).map((error) => error.message),
    supergraph: result.supergraphSdl ?? null,
  }),
);
