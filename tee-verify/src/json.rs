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

/// `Option<Vec<u8>>` as `0x`-hex or absent, for
/// `#[serde(default, skip_serializing_if = "Option::is_none", with = "crate::json::hex_opt")]`.
pub mod hex_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `0x`-prefixed lowercase hex (the field is skipped when `None`).
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => super::hex::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    /// Reads hex, `0x` optional, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(&s);
            ::hex::decode(digits).map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}
