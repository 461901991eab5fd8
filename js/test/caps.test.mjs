// A spend cap seen from viem (released, from npm): the transfer that would
// pass the slot's cap is a TeeRefusedError naming the rule, what the window
// has left and when it ends, and nothing reaches the chain.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { createPublicClient, createWalletClient, http } from 'viem';

import { TeeRefusedError, teeAccount } from '../dist/index.js';
import { chainState, rig, viemChain } from './rig.mjs';

let r;
let chain;
before(async () => {
  r = await rig(['generic-tx'], {
    contracts: '"any"',
    max_value_wei: '"1000000000000000000"',
    spend_cap: '{ max_wei = "300", window_secs = 86400 }',
  });
  chain = viemChain(r.chain);
});
after(() => r?.stop());

test('a spend cap stops the transfer that would pass it, saying what the window has left', async () => {
  const account = await teeAccount(r.endpoint);
  const wallet = createWalletClient({ account, chain, transport: http(r.chain.url) });
  const publicClient = createPublicClient({ chain, transport: http(r.chain.url) });
  const hash = await wallet.sendTransaction({ to: r.chain.funder, value: 200n });
  assert.equal((await publicClient.waitForTransactionReceipt({ hash })).status, 'success');
  const before = await chainState(r.chain, r.address);
  await assert.rejects(wallet.sendTransaction({ to: r.chain.funder, value: 200n }), (e) => {
    const refused = e.walk((c) => c instanceof TeeRefusedError);
    assert.equal(refused?.reason, 'SpendCapExceeded', String(e));
    assert.equal(refused.data.remaining, '100');
    assert.ok(refused.data.endsIn > 86_000 && refused.data.endsIn <= 86_400, String(refused.data.endsIn));
    return true;
  });
  assert.deepEqual(await chainState(r.chain, r.address), before);
  // What is left still goes through.
  const rest = await wallet.sendTransaction({ to: r.chain.funder, value: 100n });
  assert.equal((await publicClient.waitForTransactionReceipt({ hash: rest })).status, 'success');
});
