// Compiles RequireTEE.sol and AuthorizedToken.sol (an EIP-3009 token for the
// x402 tests) with solc-js (npm `solc`, pinned in package.json and the
// lockfile) into artifacts.json: each contract's ABI and creation bytecode,
// and the compiler and settings that made them. `--check`
// compiles again and fails if the committed artifacts differ (the gate runs
// it, so the artifacts are what this source compiles to).
import { readFileSync, writeFileSync } from 'node:fs';
import solc from 'solc';

const files = ['RequireTEE.sol', 'AuthorizedToken.sol'];
const settings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'cancun',
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
};
const sources = Object.fromEntries(files.map((f) => [f, { content: readFileSync(new URL(f, import.meta.url), 'utf8') }]));
const input = { language: 'Solidity', sources, settings };
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const artifacts = { compiler: `solc ${solc.version()}`, settings: { optimizer: settings.optimizer, evmVersion: settings.evmVersion }, contracts: {} };
for (const f of files) {
  for (const [name, c] of Object.entries(output.contracts[f])) {
    artifacts.contracts[name] = { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
  }
}
const text = `${JSON.stringify(artifacts, null, 1)}\n`;
const path = new URL('artifacts.json', import.meta.url);
if (process.argv.includes('--check')) {
  if (readFileSync(path, 'utf8') !== text) {
    console.error(`contracts/artifacts.json is not what ${files.join(' and ')} compile to: run \`npm run build\` in contracts/`);
    process.exit(1);
  }
  console.log(`artifacts.json matches ${artifacts.compiler}`);
} else {
  writeFileSync(path, text);
  console.log(`wrote artifacts.json (${artifacts.compiler})`);
}
