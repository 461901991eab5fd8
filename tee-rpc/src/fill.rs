//! What a wallet fills in a transaction the caller left incomplete, from
//! the upstream node: `chainId`, `nonce` (pending), fees (EIP-1559 from the
//! latest block, or `gasPrice` for a legacy type 0) and `gas` (the node's
//! estimate). What the caller gave is kept, and checked only by the
//! signer's decoder and policy; a `chainId` that is not the node's is
//! refused here, since the transaction would go to the wrong chain.

use serde_json::{Map, Value, json};
use tee_client::onchain::rpc::Rpc;
use tee_core::Address;

use crate::failure::{Failure, upstream};

fn hex_quantity(n: u128) -> Value {
    json!(format!("0x{n:x}"))
}

fn parse_quantity(method: &str, v: &Value) -> Result<u128, Failure> {
    v.as_str()
        .and_then(|s| s.strip_prefix("0x"))
        .and_then(|s| u128::from_str_radix(s, 16).ok())
        .ok_or_else(|| {
            Failure::new(
                crate::failure::UPSTREAM_REFUSED,
                format!("{method}: the node answered {v}"),
            )
        })
}

/// A quantity the caller gave: a number, or a hex or decimal string.
fn given(tx: &Map<String, Value>, name: &str) -> Option<u128> {
    match tx.get(name)? {
        Value::Number(n) => n.as_u64().map(u128::from),
        Value::String(s) => match s.strip_prefix("0x") {
            Some(h) => u128::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        },
        _ => None,
    }
}

/// Fills `tx` (sent by `from`) from `node`. Null fields count as absent.
pub fn fill(tx: &mut Map<String, Value>, from: Address, node: &Rpc) -> Result<(), Failure> {
    tx.retain(|_, v| !v.is_null());
    tx.insert("from".into(), json!(from.to_string()));
    let chain = node.chain_id().map_err(|e| upstream(&e))?;
    match given(tx, "chainId") {
        None if !tx.contains_key("chainId") => {
            tx.insert("chainId".into(), hex_quantity(chain.into()));
        }
        Some(c) if c == u128::from(chain) => {}
        // Unreadable: the decoder names the field.
        None => {}
        Some(c) => {
            return Err(Failure::params(format!(
                "field \"chainId\": {c}, but the upstream node's chain is {chain}"
            )));
        }
    }
    if !tx.contains_key("nonce") {
        let nonce = node.nonce(&from).map_err(|e| upstream(&e))?;
        tx.insert("nonce".into(), hex_quantity(nonce.into()));
    }
    let has = |k: &str| tx.contains_key(k);
    if !has("gasPrice") && !has("maxFeePerGas") && !has("maxPriorityFeePerGas") {
        if given(tx, "type") == Some(0) {
            let price = node.call("eth_gasPrice", json!([])).map_err(|e| upstream(&e))?;
            tx.insert("gasPrice".into(), hex_quantity(parse_quantity("eth_gasPrice", &price)?));
        } else {
            let fees = node.fees().map_err(|e| upstream(&e))?;
            tx.insert("maxFeePerGas".into(), hex_quantity(fees.max_fee_per_gas));
            tx.insert("maxPriorityFeePerGas".into(), hex_quantity(fees.max_priority_fee_per_gas));
        }
    } else if has("maxFeePerGas") && !has("maxPriorityFeePerGas") {
        // A cap without a tip: the node's tip, within the cap.
        let cap = given(tx, "maxFeePerGas").unwrap_or(0);
        let tip = node.fees().map_err(|e| upstream(&e))?.max_priority_fee_per_gas;
        tx.insert("maxPriorityFeePerGas".into(), hex_quantity(tip.min(cap)));
    }
    if !tx.contains_key("gas") {
        let mut call = Map::new();
        for k in ["from", "to", "data", "input", "value"] {
            if let Some(v) = tx.get(k) {
                call.insert(k.into(), v.clone());
            }
        }
        let gas = node.call("eth_estimateGas", json!([call])).map_err(|e| upstream(&e))?;
        tx.insert("gas".into(), hex_quantity(parse_quantity("eth_estimateGas", &gas)?));
    }
    Ok(())
}
