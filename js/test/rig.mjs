// What the TypeScript tests run against, started as a user starts them: a
// chain node with the ERC-8004 v2.0.0 registries (python/tests/chain_node.py:
// eth-tester on py-evm over HTTP JSON-RPC), a signer on the simulated TEE
// (`tee-signer serve --simulated`), keys in slots 0 (the agent's owner,
// funded) and 1 (a second wallet) under a policy that allows the given
// kinds on those registries, and the JSON-RPC endpoint (`tee-signer rpc`)
// serving both slots in front of the signer and the node.
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { defineChain } from 'viem';

const root = fileURLToPath(new URL('../..', import.meta.url));
const bin = process.env.TEE_SIGNER_BIN ?? join(root, 'target/debug/tee-signer');
const python = process.env.CHAIN_PYTHON ?? join(root, '.venv/bin/python');
// anvil's account 0: the signer's admin here (it only authorizes admin commands).
const ADMIN_KEY = 'ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
const ADMIN = '0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266';

/** Starts `cmd args` and resolves with the first line of `stream` that
 * contains `ready` (no clock: the stream ending first means it exited). */
function start(cmd, args, stream, ready) {
  const proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const seen = [];
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc[stream] });
    let done = false;
    lines.on('line', (line) => {
      seen.push(line);
      if (!done && line.includes(ready)) {
        done = true;
        resolve({ proc, line });
      }
    });
    lines.on('close', () => {
      if (!done) reject(new Error(`${cmd} ${args[0]} exited before it was ready:\n${seen.join('\n')}`));
    });
    // Drain the other stream so the process never blocks on a full pipe.
    proc[stream === 'stdout' ? 'stderr' : 'stdout'].resume();
  });
}

async function node(url, method, params) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const a = await r.json();
  if (a.error) throw new Error(`${method}: ${a.error.message}`);
  return a.result;
}

/** The rig: `{ chain, endpoint, address, stop() }`; `kinds` are what the
 * slot's policy allows; `policy` replaces or adds policy file lines by key
 * (`{ contracts: '"any"' }`). */
export async function rig(kinds, policy = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tee-signer-js-'));
  const procs = [];
  try {
    const chainNode = await start(python, [join(root, 'python/tests/chain_node.py')], 'stdout', '"url"');
    procs.push(chainNode.proc);
    const chain = JSON.parse(chainNode.line);
    const sock = join(dir, 'signer.sock');
    const signer = await start(
      bin,
      ['serve', '--simulated', '--state', join(dir, 'state'), '--listen', `unix:${sock}`, '--admin', ADMIN],
      'stderr',
      'signer running',
    );
    procs.push(signer.proc);
    const keyFile = join(dir, 'admin.key');
    writeFileSync(keyFile, ADMIN_KEY);
    chmodSync(keyFile, 0o600);
    const policyFile = join(dir, 'policy.toml');
    const lines = {
      kinds: JSON.stringify(kinds),
      chains: `[${chain.chainId}]`,
      contracts: JSON.stringify([chain.identity, chain.reputation, chain.validation]),
      agents: '"any"',
      max_value_wei: '"0"',
      max_gas_limit: '3000000',
      max_fee_per_gas_wei: '"1000000000000"',
      max_deadline_ahead_secs: '300',
      ...policy,
    };
    writeFileSync(policyFile, Object.entries(lines).map(([k, v]) => `${k} = ${v}`).join('\n'));
    for (const [slot, path] of [['0', 'agent/ts'], ['1', 'agent/ts-wallet']]) {
      const admin = ['--connect', `unix:${sock}`, '--slot', slot, '--admin-key-file', keyFile];
      execFileSync(bin, ['derive-key', ...admin, '--path', path], { stdio: 'pipe' });
      execFileSync(bin, ['set-policy', ...admin, '--policy', policyFile], { stdio: 'pipe' });
    }
    const rpc = await start(
      bin,
      ['rpc', '--connect', `unix:${sock}`, '--slot', '0', '--slot', '1', '--upstream', chain.url, '--listen', 'tcp:127.0.0.1:0'],
      'stdout',
      'JSON-RPC endpoint at',
    );
    procs.push(rpc.proc);
    const endpoint = { url: rpc.line.split(' ')[3] };
    const addresses = await node(endpoint.url, 'eth_accounts', []);
    const [address] = addresses;
    const fund = await node(chain.url, 'eth_sendTransaction', [
      { from: chain.funder, to: address, value: '0xde0b6b3a7640000' },
    ]);
    await node(chain.url, 'eth_getTransactionReceipt', [fund]);
    return {
      chain,
      endpoint,
      address,
      addresses,
      stop() {
        for (const p of procs.reverse()) {
          p.stdin.end();
          p.kill('SIGTERM');
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    for (const p of procs) p.kill('SIGTERM');
    throw e;
  }
}

/** The block number and the account's nonce: what a call that reached the
 * chain would change. */
export async function chainState(chain, address) {
  return [
    await node(chain.url, 'eth_blockNumber', []),
    await node(chain.url, 'eth_getTransactionCount', [address, 'latest']),
  ];
}

/** The ERC-8004 v2.0.0 contracts' ABIs, from the committed artifacts
 * (python/tests/data/README.md names their source). */
const artifacts = JSON.parse(readFileSync(join(root, 'python/tests/data/erc8004-v2.0.0.json'), 'utf8'));
export const IDENTITY_ABI = artifacts.IdentityRegistryUpgradeable.abi;

/** The chain's time: the latest block's timestamp. */
export async function chainNow(chain) {
  return BigInt((await node(chain.url, 'eth_getBlockByNumber', ['latest', false])).timestamp);
}

/** The identity registry's `AgentWalletSet` consent (EIP-712), its deadline
 * a minute after the chain's time (the contract reads the chain's clock). */
export async function agentWalletSet(chain, agentId, wallet, owner) {
  const deadline = (await chainNow(chain)) + 60n;
  return {
    domain: { name: 'ERC8004IdentityRegistry', version: '1', chainId: chain.chainId, verifyingContract: chain.identity },
    types: {
      AgentWalletSet: [
        { name: 'agentId', type: 'uint256' },
        { name: 'newWallet', type: 'address' },
        { name: 'owner', type: 'address' },
        { name: 'deadline', type: 'uint256' },
      ],
    },
    primaryType: 'AgentWalletSet',
    message: { agentId, newWallet: wallet, owner, deadline },
  };
}

/** The rig's chain node (`r.chain`) as a viem chain. */
export function viemChain(chain) {
  return defineChain({
    id: chain.chainId,
    name: 'eth-tester',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [chain.url] } },
  });
}
