// Coinbase AgentKit for TypeScript, released from npm and unchanged: its
// ViemWalletProvider over a viem wallet client whose account is the
// signer's key. What an AgentKit agent's actions call (sendTransaction,
// signTypedData, signMessage) signs in the signer under its policy; a raw
// hash (`sign`) is refused, as the signer never signs one.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ViemWalletProvider } from '@coinbase/agentkit';
import { createWalletClient, encodeFunctionData, http, verifyTypedData } from 'viem';

import { TeeRefusedError, getAttestation, teeAccount } from '../dist/index.js';
import { IDENTITY_ABI, agentWalletSet, chainState, rig, viemChain } from './rig.mjs';

// Each AgentKit wallet provider posts an analytics event with the wallet's
// address to https://cca-lite.coinbase.com when it is created (no opt-out;
// an unhandled rejection when that host is unreachable, as in CI). That
// call is answered here, locally; every other fetch is untouched.
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init) =>
  String(input).startsWith('https://cca-lite.coinbase.com/') ? Promise.resolve(new Response(null, { status: 204 })) : realFetch(input, init);

let r;
let provider;
before(async () => {
  r = await rig(['register(string)', 'AgentWalletSet']);
  const chain = viemChain(r.chain);
  const client = createWalletClient({ account: await teeAccount(r.endpoint), chain, transport: http(r.chain.url) });
  provider = new ViemWalletProvider(client);
});
after(() => r?.stop());

test("AgentKit's ViemWalletProvider registers an agent and signs the wallet consent", async () => {
  assert.equal(provider.getAddress(), r.address);
  const data = encodeFunctionData({ abi: IDENTITY_ABI, functionName: 'register', args: ['ipfs://agentkit-agent'] });
  const hash = await provider.sendTransaction({ to: r.chain.identity, data });
  const receipt = await provider.waitForTransactionReceipt(hash);
  assert.equal(receipt.status, 'success');
  assert.equal((await getAttestation(r.endpoint, hash)).address, r.address);

  const consent = await agentWalletSet(r.chain, 1n, r.address, r.address);
  const signature = await provider.signTypedData(consent);
  assert.ok(await verifyTypedData({ ...consent, address: r.address, signature }));
});

test('what the policy does not allow, and raw hashes, are refused and reach no chain', async () => {
  const before = await chainState(r.chain, r.address);
  await assert.rejects(provider.sendTransaction({ to: r.chain.funder, value: 1n }), (e) => {
    assert.equal(e.walk?.((c) => c instanceof TeeRefusedError)?.reason ?? e.reason, 'KindNotAllowed', String(e));
    return true;
  });
  await assert.rejects(provider.signMessage('hello'), (e) => (e.walk?.((c) => c instanceof TeeRefusedError) ?? e).reason === 'KindNotAllowed');
  await assert.rejects(provider.sign(`0x${'11'.repeat(32)}`));
  assert.deepEqual(await chainState(r.chain, r.address), before);
});
