/**
 * An ethers v6 signer whose key stays in the signer: an `AbstractSigner`
 * over the endpoint. ethers fills the transaction from its provider (the
 * chain's node, or the endpoint itself, which forwards reads); the signer
 * signs it under its policy (or refuses with a {@link TeeRefusedError}).
 */
import {
  AbstractSigner,
  type BigNumberish,
  type Provider,
  type TransactionRequest,
  type TypedDataDomain,
  type TypedDataField,
  TypedDataEncoder,
  getAddress,
  hexlify,
  resolveAddress,
  toQuantity,
  toUtf8Bytes,
} from 'ethers';

import { type Endpoint, TeeRefusedError, call } from './rpc.js';

const quantity = (v: BigNumberish | null | undefined): string | undefined =>
  v === undefined || v === null ? undefined : toQuantity(v);

export class TeeSigner extends AbstractSigner {
  readonly endpoint: Endpoint;
  readonly address: string;

  /** The signer for `address` at `endpoint`; {@link TeeSigner.at} asks the endpoint. */
  constructor(endpoint: Endpoint, address: string, provider?: Provider | null) {
    super(provider);
    this.endpoint = endpoint;
    this.address = getAddress(address);
  }

  /** The account at `endpoint` (`address`, or the first it serves). */
  static async at(endpoint: Endpoint, provider?: Provider | null, address?: string): Promise<TeeSigner> {
    const served = await call<string[]>(endpoint, 'eth_accounts');
    const chosen = address ?? served[0];
    if (chosen === undefined || !served.some((a) => a.toLowerCase() === chosen.toLowerCase())) {
      throw new TeeRefusedError(4100, `${chosen ?? 'no account'}: not an account the signer at ${endpoint.url} serves`);
    }
    return new TeeSigner(endpoint, chosen, provider);
  }

  async getAddress(): Promise<string> {
    return this.address;
  }

  connect(provider: Provider | null): TeeSigner {
    return new TeeSigner(this.endpoint, this.address, provider);
  }

  async signMessage(message: string | Uint8Array): Promise<string> {
    const raw = typeof message === 'string' ? hexlify(toUtf8Bytes(message)) : hexlify(message);
    return call<string>(this.endpoint, 'personal_sign', [raw, this.address]);
  }

  async signTypedData(
    domain: TypedDataDomain,
    types: Record<string, TypedDataField[]>,
    value: Record<string, unknown>,
  ): Promise<string> {
    const resolved = await TypedDataEncoder.resolveNames(domain, types, value, async (name) =>
      resolveAddress(name, this.provider),
    );
    const payload = TypedDataEncoder.getPayload(resolved.domain, types, resolved.value);
    return call<string>(this.endpoint, 'eth_signTypedData_v4', [this.address, JSON.stringify(payload)]);
  }

  async signTransaction(tx: TransactionRequest): Promise<string> {
    const from = tx.from ? await resolveAddress(tx.from, this.provider) : this.address;
    if (from.toLowerCase() !== this.address.toLowerCase()) {
      throw new TeeRefusedError(4100, `the transaction is from ${from}, this signer is ${this.address}`);
    }
    const to = tx.to ? await resolveAddress(tx.to, this.provider) : undefined;
    const rpc = {
      from: this.address,
      to,
      data: tx.data ?? undefined,
      value: quantity(tx.value),
      nonce: quantity(tx.nonce),
      gas: quantity(tx.gasLimit),
      chainId: quantity(tx.chainId),
      type: quantity(tx.type),
      gasPrice: quantity(tx.gasPrice),
      maxFeePerGas: quantity(tx.maxFeePerGas),
      maxPriorityFeePerGas: quantity(tx.maxPriorityFeePerGas),
      accessList: tx.accessList && (Array.isArray(tx.accessList) ? tx.accessList.length > 0 : Object.keys(tx.accessList).length > 0) ? tx.accessList : undefined,
    };
    return call<string>(this.endpoint, 'eth_signTransaction', [rpc]);
  }
}
