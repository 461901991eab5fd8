// Compiles the ERC-8004 v2.0.0 contracts as the upstream hardhat config does
// (solc 0.8.24, evmVersion shanghai, optimizer 200 runs, viaIR).
const solc = require('solc');
const fs = require('fs');
const path = require('path');
const files = ['ERC1967Proxy.sol', 'HardhatMinimalUUPS.sol', 'IdentityRegistryUpgradeable.sol',
  'ReputationRegistryUpgradeable.sol', 'ValidationRegistryUpgradeable.sol'];
const sources = {};
for (const f of files) sources['contracts/' + f] = { content: fs.readFileSync('contracts/' + f, 'utf8') };
const input = {
  language: 'Solidity', sources,
  settings: {
    evmVersion: 'shanghai', optimizer: { enabled: true, runs: 200 }, viaIR: true,
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};
function findImports(p) {
  for (const base of ['node_modules', '.']) {
    const full = path.join(base, p);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, 'utf8') };
  }
  return { error: 'not found: ' + p };
}
const out = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
for (const e of out.errors || []) if (e.severity === 'error') { console.error(e.formattedMessage); process.exit(1); }
const want = { 'ERC1967Proxy': 'contracts/ERC1967Proxy.sol', 'HardhatMinimalUUPS': 'contracts/HardhatMinimalUUPS.sol',
  'IdentityRegistryUpgradeable': 'contracts/IdentityRegistryUpgradeable.sol',
  'ReputationRegistryUpgradeable': 'contracts/ReputationRegistryUpgradeable.sol',
  'ValidationRegistryUpgradeable': 'contracts/ValidationRegistryUpgradeable.sol' };
const artifacts = {};
for (const [name, file] of Object.entries(want)) {
  const c = out.contracts[file][name];
  artifacts[name] = { abi: c.abi, bytecode: '0x' + c.evm.bytecode.object };
  console.log(name, c.evm.bytecode.object.length / 2, 'bytes');
}
fs.writeFileSync('erc8004-v2.0.0.json', JSON.stringify(artifacts));
