#!/usr/bin/env node
// Compile contracts/src/*.sol with solc-js (npm `solc`, no download: the compiler is the
// package itself) and write one artefact per contract to contracts/artifacts/<Name>.json.
//
//   node contracts/build.cjs            write the artefacts
//   node contracts/build.cjs --stdout   print them as one JSON object, write nothing
//
// Source names are relative ("OmniHubMembership.sol", "@openzeppelin/..."), so the
// metadata hash in the bytecode does not depend on where the checkout lives: the same
// sources and settings give the same bytes on every machine.
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const HERE = __dirname;
const SRC = path.join(HERE, "src");
const OUT = path.join(HERE, "artifacts");
const NODE_MODULES = path.join(HERE, "node_modules");

const SETTINGS = {
  evmVersion: "cancun", // OpenZeppelin 5 uses mcopy (cancun); paris fails
  optimizer: { enabled: true, runs: 200 },
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
  },
};

function findImport(importPath) {
  const candidate = path.join(NODE_MODULES, importPath);
  if (!candidate.startsWith(NODE_MODULES + path.sep) || !fs.existsSync(candidate)) {
    return { error: `not found in contracts/node_modules: ${importPath}` };
  }
  return { contents: fs.readFileSync(candidate, "utf8") };
}

function compile() {
  const sources = {};
  for (const name of fs.readdirSync(SRC).sort()) {
    if (name.endsWith(".sol")) {
      sources[name] = { content: fs.readFileSync(path.join(SRC, name), "utf8") };
    }
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  if (errors.length > 0) {
    for (const e of errors) process.stderr.write(e.formattedMessage + "\n");
    process.exit(1);
  }
  const artefacts = {};
  for (const sourceName of Object.keys(sources)) {
    for (const [name, contract] of Object.entries(output.contracts[sourceName] || {})) {
      artefacts[name] = {
        contractName: name,
        sourceName,
        compiler: `solc-js ${solc.version()}`,
        settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer },
        abi: contract.abi,
        bytecode: "0x" + contract.evm.bytecode.object,
        deployedBytecode: "0x" + contract.evm.deployedBytecode.object,
      };
    }
  }
  return artefacts;
}

function main() {
  const artefacts = compile();
  if (process.argv.includes("--stdout")) {
    process.stdout.write(JSON.stringify(artefacts) + "\n");
    return;
  }
  fs.mkdirSync(OUT, { recursive: true });
  for (const [name, artefact] of Object.entries(artefacts)) {
    fs.writeFileSync(path.join(OUT, `${name}.json`), JSON.stringify(artefact, null, 2) + "\n");
    process.stdout.write(`wrote contracts/artifacts/${name}.json\n`);
  }
}

main();
