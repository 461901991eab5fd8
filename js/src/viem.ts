/**
 * A viem account whose key stays in the signer: `toAccount` over the
 * endpoint, as Turnkey's and AWS KMS's viem signers are built. viem's
 * wallet client fills and sends the transaction; the signer signs it under
 * its policy (or refuses with a {@link TeeRefusedError}).
 */
import {
  type Hex,
  type LocalAccount,
  type TransactionSerializable,
  getTypesForEIP712Domain,
  numberToHex,
  serializeTypedData,
  toHex,
} from 'viem';
import { toAccount } from 'viem/accounts';

import { type Endpoint, TeeRefusedError, call } from './rpc.js';

const quantity = (v: bigint | number | undefined): Hex | undefined =>
  v === undefined ? undefined : numberToHex(v);

/** A transaction as `eth_signTransaction` takes it. */
export function rpcTransaction(tx: TransactionSerializable, from: Hex): Record<string, unknown> {
  const t = tx as TransactionSerializable & {
    gasPrice?: bigint;
    maxFeePerGas?: bigint;
    maxPriorityFeePerGas?: bigint;
    accessList?: readonly unknown[];
  };
  const type = t.type === 'eip1559' ? '0x2' : t.type === 'legacy' ? '0x0' : t.type;
  return {
    from,
    to: t.to ?? undefined,
    data: t.data,
    value: quantity(t.value),
    nonce: quantity(t.nonce),
    gas: quantity(t.gas),
    chainId: quantity(t.chainId),
    type,
    gasPrice: quantity(t.gasPrice),
    maxFeePerGas: quantity(t.maxFeePerGas),
    maxPriorityFeePerGas: quantity(t.maxPriorityFeePerGas),
    accessList: t.accessList && t.accessList.length > 0 ? t.accessList : undefined,
  };
}

/** The account at `endpoint` (`address`, or the first it serves). */
export async function teeAccount(endpoint: Endpoint & { address?: Hex }): Promise<LocalAccount<'tee-signer'>> {
  const served = await call<Hex[]>(endpoint, 'eth_accounts');
  const address = endpoint.address ?? served[0];
  if (address === undefined || !served.some((a) => a.toLowerCase() === address.toLowerCase())) {
    throw new TeeRefusedError(4100, `${address ?? 'no account'}: not an account the signer at ${endpoint.url} serves`);
  }
  const account = toAccount({
    address,
    async signMessage({ message }) {
      // A string is its UTF-8 bytes (even one that looks like hex), as viem signs it.
      const raw = typeof message === 'string' ? toHex(message) : typeof message.raw === 'string' ? message.raw : toHex(message.raw);
      return call<Hex>(endpoint, 'personal_sign', [raw, address]);
    },
    async signTypedData(typedData) {
      const { domain = {}, message, primaryType, types } = typedData as unknown as {
        domain?: Record<string, unknown>;
        message: Record<string, unknown>;
        primaryType: string;
        types: Record<string, unknown>;
      };
      const full = { domain, message, primaryType, types: { EIP712Domain: getTypesForEIP712Domain({ domain }), ...types } };
      return call<Hex>(endpoint, 'eth_signTypedData_v4', [address, serializeTypedData(full as never)]);
    },
    async signTransaction(transaction) {
      return call<Hex>(endpoint, 'eth_signTransaction', [rpcTransaction(transaction, address)]);
    },
  });
  return { ...account, source: 'tee-signer' } as LocalAccount<'tee-signer'>;
}
