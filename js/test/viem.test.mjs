// viem, released from npm, with the signer's key: as a custom account
// (`toAccount`) and as a JSON-RPC account over the EIP-1193 provider.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { createPublicClient, createWalletClient, custom, http, parseEventLogs, verifyTypedData } from 'viem';

import { TeeRefusedError, getAttestation, teeAccount, teeProvider } from '../dist/index.js';
import { IDENTITY_ABI, agentWalletSet, chainState, rig, viemChain } from './rig.mjs';

let r;
let chain;
before(async () => {
  r = await rig(['register(string)', 'setAgentWallet', 'AgentWalletSet']);
  chain = viemChain(r.chain);
});
after(() => r?.stop());

async function register(wallet, publicClient, uri) {
  const hash = await wallet.writeContract({ address: r.chain.identity, abi: IDENTITY_ABI, functionName: 'register', args: [uri] });
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  assert.equal(receipt.status, 'success');
  const [registered] = parseEventLogs({ abi: IDENTITY_ABI, eventName: 'Registered', logs: receipt.logs });
  return { hash, agentId: registered.args.agentId };
}

test('a viem account registers an agent and binds its wallet with AgentWalletSet', async () => {
  const account = await teeAccount(r.endpoint);
  assert.equal(account.address, r.address);
  const publicClient = createPublicClient({ chain, transport: http(r.chain.url) });
  // viem fills and sends the transaction itself (eth_sendRawTransaction to the node).
  const wallet = createWalletClient({ account, chain, transport: http(r.chain.url) });
  const { hash, agentId } = await register(wallet, publicClient, 'ipfs://viem-agent');
  assert.equal(await publicClient.readContract({ address: r.chain.identity, abi: IDENTITY_ABI, functionName: 'ownerOf', args: [agentId] }), r.address);

  // The signature's attestation, by the transaction's hash.
  const signed = await getAttestation(r.endpoint, hash);
  assert.equal(signed.transactionHash, hash);
  assert.deepEqual(signed.attestation.bound, { purpose: 'action_digest', value: signed.digest });

  // The wallet consent, typed data the signer reads as AgentWalletSet.
  const consent = await agentWalletSet(r.chain, agentId, r.address, r.address);
  const signature = await wallet.signTypedData(consent);
  assert.ok(await verifyTypedData({ ...consent, address: r.address, signature }));
  const set = await wallet.writeContract({
    address: r.chain.identity, abi: IDENTITY_ABI, functionName: 'setAgentWallet',
    args: [agentId, r.address, consent.message.deadline, signature],
  });
  assert.equal((await publicClient.waitForTransactionReceipt({ hash: set })).status, 'success');
  assert.equal(await publicClient.readContract({ address: r.chain.identity, abi: IDENTITY_ABI, functionName: 'getAgentWallet', args: [agentId] }), r.address);
});

test('over the EIP-1193 provider, viem sends through eth_sendTransaction', async () => {
  const provider = teeProvider(r.endpoint);
  const wallet = createWalletClient({ account: r.address, chain, transport: custom(provider) });
  const publicClient = createPublicClient({ chain, transport: custom(provider) });
  const { agentId } = await register(wallet, publicClient, 'ipfs://eip1193-agent');
  assert.ok(agentId > 0n);
  assert.deepEqual(await wallet.getAddresses(), r.addresses);
});

test('a call outside the policy is a TeeRefusedError with the device reason, and nothing reaches the chain', async () => {
  const before = await chainState(r.chain, r.address);
  const account = await teeAccount(r.endpoint);
  const wallet = createWalletClient({ account, chain, transport: http(r.chain.url) });
  // A value transfer: the policy allows registry calls only.
  await assert.rejects(wallet.sendTransaction({ to: r.chain.funder, value: 1n }), (e) => {
    const refused = e.walk((c) => c instanceof TeeRefusedError);
    assert.ok(refused, String(e));
    assert.equal(refused.reason, 'KindNotAllowed');
    return true;
  });
  // personal_sign is not among the kinds either.
  await assert.rejects(account.signMessage({ message: 'hello' }), (e) => e instanceof TeeRefusedError && e.reason === 'KindNotAllowed');
  // Through the provider: viem's UserRejectedRequestError (4001), our error its cause.
  const viaProvider = createWalletClient({ account: r.address, chain, transport: custom(teeProvider(r.endpoint)) });
  await assert.rejects(viaProvider.sendTransaction({ to: r.chain.funder, value: 1n }), (e) => {
    assert.equal(e.walk((c) => c.code === 4001)?.code, 4001, String(e));
    assert.equal(e.walk((c) => c instanceof TeeRefusedError)?.reason, 'KindNotAllowed');
    return true;
  });
  assert.deepEqual(await chainState(r.chain, r.address), before);
});
