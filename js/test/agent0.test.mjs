// agent0-sdk for TypeScript, released from npm and unchanged, given the
// signer as its EIP-1193 `walletProvider`: it registers an agent with its
// registration file on chain and sets the agent's wallet to a second TEE
// key, whose EIP-712 consent that key signs in the signer.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { SDK } from 'agent0-sdk';

import { createPublicClient, http } from 'viem';

import { getAttestation, teeAccount, teeProvider } from '../dist/index.js';
import { IDENTITY_ABI, agentWalletSet, rig } from './rig.mjs';

let r;
before(async () => {
  r = await rig([
    'register()', 'register(string)', 'register(string,(string,bytes)[])',
    'setAgentURI', 'setMetadata', 'setAgentWallet', 'AgentWalletSet',
  ]);
});
after(() => r?.stop());

test('agent0-sdk registers an agent and sets its wallet through the EIP-1193 provider', async () => {
  const sdk = new SDK({
    chainId: r.chain.chainId,
    rpcUrl: r.chain.url,
    walletProvider: teeProvider(r.endpoint),
    registryOverrides: {
      [r.chain.chainId]: { IDENTITY: r.chain.identity, REPUTATION: r.chain.reputation, VALIDATION: r.chain.validation },
    },
  });
  const agent = sdk.createAgent('tee agent', 'signs inside a TEE');
  const handle = await agent.registerOnChain();
  const mined = await handle.waitMined();
  assert.ok(mined.result.agentId, JSON.stringify(mined.result));
  const signed = await getAttestation(r.endpoint, handle.hash);
  assert.equal(signed.address, r.address);

  // The agent's wallet becomes the second TEE key: its consent is the
  // identity registry's AgentWalletSet, signed in the signer by that key.
  const [, second] = r.addresses;
  const agentId = BigInt(agent.agentId.split(':')[1]);
  const consent = await agentWalletSet(r.chain, agentId, second, r.address);
  const signature = await (await teeAccount({ ...r.endpoint, address: second })).signTypedData(consent);
  const set = await agent.setWallet(second, { deadline: Number(consent.message.deadline), signature });
  assert.ok(set, 'setWallet sent a transaction');
  const receipt = await set.waitMined();
  assert.equal(receipt.receipt.status, 'success');
  const chain = createPublicClient({ transport: http(r.chain.url) });
  const wallet = await chain.readContract({ address: r.chain.identity, abi: IDENTITY_ABI, functionName: 'getAgentWallet', args: [agentId] });
  assert.equal(wallet, second);
});
