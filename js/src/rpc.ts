/**
 * The signer's JSON-RPC endpoint (`tee-signer rpc`) over HTTP, and its
 * errors as typed classes. Everything else in this package calls it: no
 * wire format, key or check is implemented here.
 */

/** Where the endpoint is, and its bearer token if it has one. */
export interface Endpoint {
  /** `http://127.0.0.1:8545` (what `tee-signer rpc` printed). */
  url: string;
  /** The token of `tee-signer rpc --token-file`. */
  token?: string;
  /** A `fetch` to use instead of the global one. */
  fetch?: typeof fetch;
}

/** What the endpoint put in an error's `data`. */
export interface ErrorData {
  /** The device's reason: the policy rule (`KindNotAllowed`,
   * `DeadlineExpired`, ...) or the device's error (`Replay`, ...). */
  reason?: string;
  /** The device's time the rule read (unix seconds), for time rules. */
  deviceTime?: number;
  /** `SpendCapExceeded`: the wei the slot's spend window has left (a
   * decimal string: it may pass 2^53). */
  remaining?: string;
  /** `SpendCapExceeded`: seconds until the window ends, by the device's clock. */
  endsIn?: number;
  /** The device's answer, as the signer printed it. */
  device?: string;
  [key: string]: unknown;
}

/** An error the endpoint answered, with its JSON-RPC / EIP-1193 code. */
export class TeeSignerError extends Error {
  readonly code: number;
  readonly data?: ErrorData;
  constructor(code: number, message: string, data?: ErrorData) {
    super(message);
    this.name = 'TeeSignerError';
    this.code = code;
    this.data = data;
  }
}

/** The signer refused (EIP-1193 4001: its policy or anti-replay; 4100: an
 * account it does not serve); `reason` is the device's. */
export class TeeRefusedError extends TeeSignerError {
  readonly reason?: string;
  constructor(code: number, message: string, data?: ErrorData) {
    super(code, message, data);
    this.name = 'TeeRefusedError';
    this.reason = data?.reason;
  }
}

/** What a held action's approvers sign, and who they are (`tee-signer sign`
 * prints the same). */
export interface ApprovalRequest {
  slot: number;
  signer: `0x${string}`;
  sequence: number;
  digest: `0x${string}`;
  expires: number;
  need: number;
  have: number;
  approvers: `0x${string}`[];
  action?: unknown;
}

/** The slot's policy holds the action until `need` of its approvers approve
 * it (4001, reason `ApprovalRequired`): each signs `typedData` (EIP-712, any
 * wallet: viem's `signTypedData`), then {@link signApproved} signs the same
 * request with their signatures. */
export class TeeApprovalRequiredError extends TeeRefusedError {
  readonly request: ApprovalRequest;
  readonly typedData: Record<string, unknown>;
  constructor(code: number, message: string, data: ErrorData) {
    super(code, message, data);
    this.name = 'TeeApprovalRequiredError';
    this.request = data.approvalRequest as ApprovalRequest;
    this.typedData = data.typedData as Record<string, unknown>;
  }
}

/** The signer (-32002) or the chain node behind the endpoint (4901), or the
 * endpoint itself, could not be reached. */
export class TeeUnavailableError extends TeeSignerError {
  constructor(code: number, message: string, data?: ErrorData) {
    super(code, message, data);
    this.name = 'TeeUnavailableError';
  }
}

/** The request is not one the signer takes (-32602 and the JSON-RPC
 * request errors): the message names the field. */
export class TeeInvalidError extends TeeSignerError {
  constructor(code: number, message: string, data?: ErrorData) {
    super(code, message, data);
    this.name = 'TeeInvalidError';
  }
}

/** The typed error of a JSON-RPC error object. */
export function errorOf(error: { code: number; message: string; data?: ErrorData }): TeeSignerError {
  const { code, message, data } = error;
  if (code === 4001 && data?.reason === 'ApprovalRequired') return new TeeApprovalRequiredError(code, message, data);
  if (code === 4001 || code === 4100) return new TeeRefusedError(code, message, data);
  if (code === -32002 || code === 4900 || code === 4901) return new TeeUnavailableError(code, message, data);
  if (code === -32602 || code === -32600 || code === -32700) return new TeeInvalidError(code, message, data);
  return new TeeSignerError(code, message, data);
}

let nextId = 1;

/** One JSON-RPC call: its result, or the typed error. */
export async function call<T = unknown>(endpoint: Endpoint, method: string, params: unknown[] = []): Promise<T> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (endpoint.token !== undefined) headers.authorization = `Bearer ${endpoint.token}`;
  const doFetch = endpoint.fetch ?? fetch;
  let response: Response;
  try {
    response = await doFetch(endpoint.url, {
      method: 'POST',
      headers,
      body: JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params }),
    });
  } catch (e) {
    throw new TeeUnavailableError(-32002, `the signer's endpoint at ${endpoint.url}: ${String(e)}`);
  }
  const text = await response.text();
  let answer: { result?: T; error?: { code: number; message: string; data?: ErrorData } };
  try {
    answer = JSON.parse(text);
  } catch {
    throw new TeeUnavailableError(-32002, `the signer's endpoint answered HTTP ${response.status}: ${text.slice(0, 200)}`);
  }
  if (answer.error) throw errorOf(answer.error);
  return answer.result as T;
}

/** A signature the endpoint made, with its attestation (what
 * `tee-signer verify` and the Python verifier check). */
export interface TeeSignature {
  provider: string;
  slot: number;
  sequence: number;
  digest: `0x${string}`;
  signature: `0x${string}`;
  address: `0x${string}`;
  rawTransaction?: `0x${string}`;
  transactionHash?: `0x${string}`;
  attestation: {
    bound: { purpose: string; value: `0x${string}` };
    quote: string;
    [key: string]: unknown;
  };
}

/** The attestation of a signature the endpoint made, by the signature or
 * its transaction's hash; `null` if the endpoint no longer keeps it. */
export async function getAttestation(endpoint: Endpoint, signatureOrTxHash: string): Promise<TeeSignature | null> {
  return call<TeeSignature | null>(endpoint, 'tee_getAttestation', [signatureOrTxHash]);
}

/** `tee_signApproved`: what `method` (`eth_signTransaction`,
 * `eth_sendTransaction`, `eth_signTypedData_v4`, `personal_sign`) answers for
 * `params`, signed with the approvers' `signatures` over the typed data a
 * {@link TeeApprovalRequiredError} carried. A transaction must be whole
 * (nonce, gas, fees): the approvals are of its digest. */
export async function signApproved<T = `0x${string}`>(
  endpoint: Endpoint,
  method: string,
  params: unknown[],
  request: ApprovalRequest,
  signatures: `0x${string}`[],
): Promise<T> {
  return call<T>(endpoint, 'tee_signApproved', [method, params, { approvalRequest: request, signatures }]);
}

/** The accounts the endpoint serves, with their slots. */
export async function teeAccounts(endpoint: Endpoint): Promise<{ address: `0x${string}`; slot: number }[]> {
  return call(endpoint, 'tee_accounts');
}

/** An EIP-1193 provider over the endpoint: signing methods go to the
 * signer, the rest to the endpoint's upstream node. What agent0-sdk's
 * `walletProvider`, viem's `custom()` and AgentKit's EIP-1193 paths take.
 * Errors keep the endpoint's `code` (EIP-1193 4001 for a refusal), as
 * viem maps them. */
export interface Eip1193Provider {
  request(args: { method: string; params?: unknown[] | object }): Promise<unknown>;
  on(event: string, listener: (...args: unknown[]) => void): Eip1193Provider;
  removeListener(event: string, listener: (...args: unknown[]) => void): Eip1193Provider;
}

export function teeProvider(endpoint: Endpoint): Eip1193Provider {
  const provider: Eip1193Provider = {
    request: ({ method, params }) =>
      call(endpoint, method, Array.isArray(params) ? params : params === undefined ? [] : [params]),
    // HTTP has no subscriptions: accounts and chains do not change under it.
    on: () => provider,
    removeListener: () => provider,
  };
  return provider;
}
