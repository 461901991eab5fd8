// ethers v6, released from npm, with the signer's key: an AbstractSigner.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Contract, JsonRpcProvider, verifyTypedData } from 'ethers';

import { TeeRefusedError, TeeSigner, getAttestation } from '../dist/index.js';
import { IDENTITY_ABI, agentWalletSet, chainState, rig } from './rig.mjs';

let r;
// The chain mines at once: no 250 ms cache of the nonce between two sends.
const options = { staticNetwork: true, cacheTimeout: -1 };
before(async () => {
  r = await rig(['register(string)', 'setAgentWallet', 'AgentWalletSet']);
});
after(() => r?.stop());

test('an ethers signer registers an agent and binds its wallet with AgentWalletSet', async () => {
  const provider = new JsonRpcProvider(r.chain.url, r.chain.chainId, options);
  const signer = await TeeSigner.at(r.endpoint, provider);
  assert.equal(await signer.getAddress(), r.address);
  const identity = new Contract(r.chain.identity, IDENTITY_ABI, signer);
  // ethers fills the transaction from its provider, the signer signs it.
  const tx = await identity['register(string)']('ipfs://ethers-agent');
  const receipt = await tx.wait();
  assert.equal(receipt.status, 1);
  const registered = receipt.logs.map((l) => identity.interface.parseLog(l)).find((l) => l?.name === 'Registered');
  const agentId = registered.args.agentId;
  assert.equal(await identity.ownerOf(agentId), r.address);
  const signed = await getAttestation(r.endpoint, tx.hash);
  assert.equal(signed.address, r.address);

  const { domain, types, message } = await agentWalletSet(r.chain, agentId, r.address, r.address);
  const signature = await signer.signTypedData(domain, types, message);
  assert.equal(verifyTypedData(domain, types, message, signature), r.address);
  const set = await identity.setAgentWallet(agentId, r.address, message.deadline, signature);
  assert.equal((await set.wait()).status, 1);
  assert.equal(await identity.getAgentWallet(agentId), r.address);
});

test('a call outside the policy is a TeeRefusedError, and nothing reaches the chain', async () => {
  const provider = new JsonRpcProvider(r.chain.url, r.chain.chainId, options);
  const signer = await TeeSigner.at(r.endpoint, provider);
  const before = await chainState(r.chain, r.address);
  await assert.rejects(signer.sendTransaction({ to: r.chain.funder, value: 1n }), (e) => {
    assert.ok(e instanceof TeeRefusedError, String(e));
    assert.equal(e.code, 4001);
    assert.equal(e.reason, 'KindNotAllowed');
    return true;
  });
  await assert.rejects(signer.signMessage('hello'), (e) => e instanceof TeeRefusedError && e.reason === 'KindNotAllowed');
  assert.deepEqual(await chainState(r.chain, r.address), before);
});
