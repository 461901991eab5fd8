//! JSON for people and other languages. The core types write themselves
//! (`0x`-hex, EIP-55 addresses, decimal `U256`: `tee_core::hex`); this adds
//! what they do not cover: variable-length bytes.

/// `Vec<u8>` as `0x`-hex (reading accepts it without `0x` too), for
/// `#[serde(with = "crate::json::hex")]`.
pub mod hex {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `0x`-prefixed lowercase hex.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&tee_core::primitives::Hex(v))
    }

    /// Reads hex, `0x` optional.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(&s);
        ::hex::decode(digits).map_err(serde::de::Error::custom)
    }
}
