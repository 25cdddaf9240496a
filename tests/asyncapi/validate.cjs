// Parses an AsyncAPI document with the official parser (@asyncapi/parser) and prints what it reports, one JSON
// object per line: {"severity": "error" | "warning" | "information" | "hint", "code", "message", "path"}.
// Relative `$ref`s (the payload schemas beside the document) are read from disk, as a code generator reads them.
// Exit 0 when the parser ran, whatever it found (the caller judges the diagnostics); 1 when it could not run.
//
//   NODE_PATH=<folder holding node_modules/@asyncapi/parser> node tests/asyncapi/validate.cjs schemas/asyncapi.yaml
"use strict";

const path = require("path");
const { Parser, fromFile } = require("@asyncapi/parser");

// The parser's DiagnosticSeverity, a number, in words.
const SEVERITIES = ["error", "warning", "information", "hint"];

async function main(file) {
  const { diagnostics } = await fromFile(new Parser(), path.resolve(file)).parse();
  for (const d of diagnostics) {
    const severity = SEVERITIES[d.severity] ?? String(d.severity);
    console.log(JSON.stringify({ severity, code: d.code, message: d.message, path: d.path }));
  }
}

if (process.argv.length !== 3) {
  console.error("usage: node validate.cjs ASYNCAPI_FILE");
  process.exit(1);
}
main(process.argv[2]).catch((error) => {
  console.error(error);
  process.exit(1);
});
