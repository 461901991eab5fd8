// m-of-n approvals seen from viem (released, from npm): a transfer above the
// policy's bound is a TeeApprovalRequiredError carrying EIP-712 typed data;
// two approvers sign it with viem's own signTypedData (as any wallet would),
// signApproved signs the same transaction with their signatures, and it
// lands on the chain. One approval is not enough, and nothing reaches the
// chain before the second.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { createPublicClient, createWalletClient, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

import { TeeApprovalRequiredError, rpcTransaction, signApproved, teeAccount } from '../dist/index.js';
import { chainState, rig, viemChain } from './rig.mjs';

const approvers = ['0x' + '11'.repeat(32), '0x' + '22'.repeat(32), '0x' + '33'.repeat(32)].map((k) =>
  privateKeyToAccount(k),
);

let r;
let chain;
before(async () => {
  const list = approvers.map((a) => `"${a.address}"`).join(', ');
  r = await rig(['generic-tx'], {
    contracts: '"any"',
    max_value_wei: '"1000000000000000000"',
    approvals: `{ approvers = [${list}], threshold = 2, above_value_wei = "1000", max_ttl_secs = 600 }`,
  });
  chain = viemChain(r.chain);
});
after(() => r?.stop());

/** The typed data as viem's signTypedData takes it. */
function forViem(typedData) {
  const { EIP712Domain: _, ...types } = typedData.types;
  return { domain: typedData.domain, types, primaryType: typedData.primaryType, message: typedData.message };
}

test('a transfer above the bound waits for two approvers and then lands', async () => {
  const account = await teeAccount(r.endpoint);
  const wallet = createWalletClient({ account, chain, transport: http(r.chain.url) });
  const publicClient = createPublicClient({ chain, transport: http(r.chain.url) });
  // Below the bound: no approvals.
  const small = await wallet.sendTransaction({ to: r.chain.funder, value: 1000n });
  assert.equal((await publicClient.waitForTransactionReceipt({ hash: small })).status, 'success');

  const tx = await wallet.prepareTransactionRequest({ to: r.chain.funder, value: 5000n });
  const held = await account.signTransaction(tx).then(
    () => assert.fail('signed without approvals'),
    (e) => e,
  );
  assert.ok(held instanceof TeeApprovalRequiredError, String(held));
  assert.equal(held.reason, 'ApprovalRequired');
  assert.equal(held.request.need, 2);
  assert.deepEqual(held.request.approvers, approvers.map((a) => a.address));
  const before = await chainState(r.chain, r.address);

  const sign = (a) => a.signTypedData(forViem(held.typedData));
  const params = [rpcTransaction(tx, account.address)];
  await assert.rejects(
    signApproved(r.endpoint, 'eth_signTransaction', params, held.request, [await sign(approvers[1])]),
    (e) => e instanceof TeeApprovalRequiredError && e.request.have === 1,
  );
  assert.deepEqual(await chainState(r.chain, r.address), before);

  const raw = await signApproved(r.endpoint, 'eth_signTransaction', params, held.request, [
    await sign(approvers[0]),
    await sign(approvers[2]),
  ]);
  const hash = await wallet.sendRawTransaction({ serializedTransaction: raw });
  assert.equal((await publicClient.waitForTransactionReceipt({ hash })).status, 'success');
});
