/**
 * The ERC-8004 TEE signer from TypeScript: everything goes through the
 * signer's Ethereum JSON-RPC endpoint (`tee-signer rpc`), which signs under
 * the device's policy and attests each signature.
 *
 * - {@link teeProvider}: an EIP-1193 provider (agent0-sdk's
 *   `walletProvider`, viem's `custom()`, AgentKit's EIP-1193 paths);
 * - {@link teeAccount}: a viem account (`toAccount`);
 * - {@link TeeSigner}: an ethers v6 signer (`AbstractSigner`);
 * - {@link getAttestation}: a signature's attestation, by signature or
 *   transaction hash; refusals are {@link TeeRefusedError} with the
 *   device's `reason`.
 *
 * `viem` and `ethers` are optional peer dependencies: import
 * `tee-signer/viem`-free parts without either.
 */
export * from './rpc.js';
export { teeAccount, rpcTransaction } from './viem.js';
export { TeeSigner } from './ethers.js';
