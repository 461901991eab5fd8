//! What a verifier accepts: the measurements, the app and the KMS root a
//! signer must prove, as a validator pins them. Loaded from TOML or JSON
//! with hex values.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tee_core::primitives::FixedBytes;
use tee_core::quote::Quote;
use tee_core::{Address, B256};

use super::eventlog::{self, BootLog};
use super::evidence::Attestation;

/// What a verifier accepts. Every measurement list is optional: absent means
/// not checked (the report says so), present means the value must be one of
/// those listed. Loaded from TOML or JSON with hex values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Allowed MRTD values (the virtual firmware).
    #[serde(default)]
    pub mrtd: Option<Vec<FixedBytes<48>>>,
    /// Allowed RTMR0 values (firmware configuration).
    #[serde(default)]
    pub rtmr0: Option<Vec<FixedBytes<48>>>,
    /// Allowed RTMR1 values (kernel).
    #[serde(default)]
    pub rtmr1: Option<Vec<FixedBytes<48>>>,
    /// Allowed RTMR2 values (kernel command line, initrd).
    #[serde(default)]
    pub rtmr2: Option<Vec<FixedBytes<48>>>,
    /// Allowed RTMR3 values (usually checked through the event log instead).
    #[serde(default)]
    pub rtmr3: Option<Vec<FixedBytes<48>>>,
    /// Allowed dstack app compose hashes (from the event log).
    #[serde(default)]
    pub compose_hash: Option<Vec<B256>>,
    /// Allowed dstack app ids (from the event log).
    #[serde(default)]
    pub app_id: Option<Vec<FixedBytes<20>>>,
    /// Accept a debug TD (never for production keys).
    #[serde(default)]
    pub allow_debug: bool,
    /// Accepted TCB statuses; empty or absent means `["UpToDate"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcb_status: Vec<String>,
    /// Address of the dstack KMS root key: when set, the signing key must come
    /// with a signature chain up to it.
    #[serde(default)]
    pub kms_root: Option<Address>,
    /// Trust the built-in simulator's DCAP root ([`tee_sim::pki`])
    /// instead of Intel's: a simulated TEE's quotes then pass DCAP (with
    /// collateral the verifier makes for the time, if none is given), and
    /// the verdict says "simulated root: no hardware". Never for a real
    /// deployment: anyone can make such quotes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trust_simulator_root: bool,
    /// Intel security advisories (`INTEL-SA-…`) a passing TCB may carry.
    /// Absent: none when `tcb_status` is absent too (UpToDate with no
    /// advisory, dstack KMS's own rule), any when `tcb_status` names the
    /// statuses; present: only these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcb_advisories: Option<Vec<String>>,
}

/// A policy file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// I/O.
    #[error("cannot read policy {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML or JSON for a policy.
    #[error("invalid policy {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

impl Policy {
    /// Reads a policy from a `.json` file, or TOML otherwise.
    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| PolicyError::Io { path: shown.clone(), source })?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|message| PolicyError::Invalid { path: shown, message })
    }

    /// What the policy pins the signer to, or what it must pin: the app
    /// (compose hash and app id, from the boot-time event log) or the image
    /// (MRTD and RTMR0-2), and, for a key `derived` by dstack's KMS, the
    /// KMS root its chain must end at. A policy that pins neither would pass
    /// a quote from any TDX machine with a matching binding.
    ///
    /// Where the evidence shows a `dstack_app` (an event log or a key
    /// chain), the image is not enough: every dstack app on that image (and
    /// that KMS) boots the same MRTD and RTMR0-2, so the app must be pinned
    /// (compose hash and app id, or RTMR3). Image-only pinning is for TDs
    /// that are not dstack apps.
    pub fn pinning(&self, derived: bool, dstack_app: bool) -> Result<String, String> {
        fn some<T>(list: Option<&Vec<T>>) -> bool {
            list.is_some_and(|l| !l.is_empty())
        }
        let app = some(self.compose_hash.as_ref()) && some(self.app_id.as_ref());
        let rtmr3 = some(self.rtmr3.as_ref());
        let image =
            [&self.mrtd, &self.rtmr0, &self.rtmr1, &self.rtmr2].iter().all(|l| some(l.as_ref()));
        let mut pinned = match (app, image) {
            (true, true) => "app (compose hash, app id) and image (MRTD, RTMR0-2)".to_owned(),
            (true, false) => "app (compose hash, app id)".to_owned(),
            (false, true) if rtmr3 => "image (MRTD, RTMR0-2) and RTMR3".to_owned(),
            (false, true) if dstack_app => return Err(Self::IMAGE_IS_NOT_THE_APP.to_owned()),
            (false, true) => "image (MRTD, RTMR0-2)".to_owned(),
            (false, false) => return Err(Self::WHAT_TO_PIN.to_owned()),
        };
        match (derived, self.kms_root) {
            (true, None) => Err(format!(
                "the policy pins the {pinned}, but the key is derived by dstack's KMS: \
                 pin kms_root, the KMS root address its chain must end at"
            )),
            (_, Some(root)) => {
                pinned.push_str(&format!(", KMS root {root}"));
                Ok(pinned)
            }
            (false, None) => Ok(pinned),
        }
    }

    /// Why an image pin is not enough for a dstack app.
    pub const IMAGE_IS_NOT_THE_APP: &str = "the evidence shows a dstack app, and the policy \
        pins only the image (MRTD, RTMR0-2), which every app on that image shares: pin the app \
        (compose_hash and app_id) or RTMR3";

    /// What a policy must pin, in words (`tee-signer verify` says it when
    /// there is no policy).
    pub const WHAT_TO_PIN: &str = "pin the app (compose_hash and app_id) or the image (mrtd, \
        rtmr0, rtmr1, rtmr2), and kms_root for a key derived by dstack's KMS; `tee-signer \
        policy` writes such a policy from a deployment";

    pub(super) fn accepted_statuses(&self) -> Vec<&str> {
        if self.tcb_status.is_empty() {
            vec!["UpToDate"]
        } else {
            self.tcb_status.iter().map(String::as_str).collect()
        }
    }

    /// Whether a platform at TCB `status` with `advisories` passes.
    #[must_use]
    pub fn accepts_tcb(&self, status: &str, advisories: &[String]) -> bool {
        let advisories_ok = match &self.tcb_advisories {
            Some(allowed) => advisories.iter().all(|a| allowed.contains(a)),
            None => !self.tcb_status.is_empty() || advisories.is_empty(),
        };
        self.accepted_statuses().contains(&status) && advisories_ok
    }
}

/// What a validator knows of a deployment, to pin a policy to.
#[derive(Debug, Clone, Copy)]
pub enum Deployment<'a> {
    /// An attestation (`tee-signer attest`): the quote's measurements and
    /// the boot-time identity of its event log (which must replay to the
    /// quote's RTMR3).
    Attestation(&'a Attestation),
    /// dstack's `Info` response (JSON, as the guest agent serves it:
    /// `app_id`, `compose_hash`, and `tcb_info` with `mrtd` and `rtmr0`-`2`,
    /// as an object or a JSON string).
    Info(&'a str),
}

/// Why a policy could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot pin a policy: {0}")]
pub struct PinError(String);

fn pin_err(m: impl Into<String>) -> PinError {
    PinError(m.into())
}

impl Policy {
    /// A policy pinned to `deployment`: its compose hash and app id, and
    /// (with `image`) its MRTD and RTMR0-2, and `kms_root`. Where
    /// `app_compose` (the app-compose JSON the validator reviewed) is
    /// given, its SHA-256 must be the deployment's compose hash: that is
    /// what ties the pinned hash to code someone read.
    pub fn pin(
        deployment: Deployment<'_>,
        kms_root: Option<Address>,
        app_compose: Option<&[u8]>,
        image: bool,
    ) -> Result<Policy, PinError> {
        let (compose_hash, app_id, measurements) = match deployment {
            Deployment::Attestation(a) => {
                let q = Quote::parse(&a.quote).map_err(|e| pin_err(format!("the quote: {e}")))?;
                let replayed = eventlog::replay(&a.event_log, 3)
                    .map_err(|e| pin_err(format!("the event log: {e}")))?;
                if replayed != *q.report.rtmr[3] {
                    return Err(pin_err("the event log does not replay to the quote's RTMR3"));
                }
                let boot = BootLog::read(&a.event_log)
                    .map_err(|e| pin_err(format!("the event log: {e}")))?;
                let get = |name: &str| {
                    boot.get(name)
                        .map(<[u8]>::to_vec)
                        .ok_or_else(|| pin_err(format!("no {name} event before system-ready")))
                };
                let m = [q.report.mr_td, q.report.rtmr[0], q.report.rtmr[1], q.report.rtmr[2]]
                    .map(|v| v.to_vec());
                (get("compose-hash")?, get("app-id")?, m)
            }
            Deployment::Info(json) => info_fields(json)?,
        };
        let compose_hash: [u8; 32] =
            compose_hash.try_into().map_err(|_| pin_err("the compose hash is not 32 bytes"))?;
        let app_id: [u8; 20] =
            app_id.try_into().map_err(|_| pin_err("the app id is not 20 bytes"))?;
        if let Some(compose) = app_compose {
            let hashed = self::compose_hash(compose).0;
            if hashed != compose_hash {
                return Err(pin_err(format!(
                    "the app-compose file hashes to {}, the deployment runs {}",
                    hex::encode(hashed),
                    hex::encode(compose_hash)
                )));
            }
        }
        let one = |v: &Vec<u8>| -> Result<Option<Vec<FixedBytes<48>>>, PinError> {
            let m: [u8; 48] =
                v.as_slice().try_into().map_err(|_| pin_err("a measurement is not 48 bytes"))?;
            Ok(image.then(|| vec![FixedBytes(m)]))
        };
        let [mrtd, rtmr0, rtmr1, rtmr2] = &measurements;
        Ok(Policy {
            mrtd: one(mrtd)?,
            rtmr0: one(rtmr0)?,
            rtmr1: one(rtmr1)?,
            rtmr2: one(rtmr2)?,
            compose_hash: Some(vec![B256(compose_hash)]),
            app_id: Some(vec![FixedBytes(app_id)]),
            kms_root,
            ..Policy::default()
        })
    }
}

/// What a deployment pins: compose hash, app id, MRTD and RTMR0-2.
type Pinned = (Vec<u8>, Vec<u8>, [Vec<u8>; 4]);

/// Compose hash, app id and MRTD, RTMR0-2 from dstack's `Info` JSON.
fn info_fields(json: &str) -> Result<Pinned, PinError> {
    let info: serde_json::Value =
        serde_json::from_str(json).map_err(|e| pin_err(format!("Info is not JSON: {e}")))?;
    let tcb = match info.get("tcb_info") {
        Some(serde_json::Value::String(s)) => serde_json::from_str(s)
            .map_err(|e| pin_err(format!("Info's tcb_info is not JSON: {e}")))?,
        Some(v) => v.clone(),
        None => serde_json::Value::Null,
    };
    let hex_field = |v: &serde_json::Value, name: &str| -> Result<Vec<u8>, PinError> {
        let s = v
            .get(name)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| pin_err(format!("Info has no {name}")))?;
        hex::decode(s.trim_start_matches("0x"))
            .map_err(|e| pin_err(format!("Info's {name} is not hex: {e}")))
    };
    // `compose_hash` is top-level in dstack 0.5's Info, inside tcb_info before.
    let compose = hex_field(&info, "compose_hash").or_else(|_| hex_field(&tcb, "compose_hash"))?;
    let app_id = hex_field(&info, "app_id")?;
    let m = [
        hex_field(&tcb, "mrtd")?,
        hex_field(&tcb, "rtmr0")?,
        hex_field(&tcb, "rtmr1")?,
        hex_field(&tcb, "rtmr2")?,
    ];
    Ok((compose, app_id, m))
}

/// The compose hash dstack computes for an app-compose file (what a CVM's
/// event log records as `compose-hash`, and a policy pins): SHA-256 of the
/// file's bytes, exactly as deployed.
#[must_use]
pub fn compose_hash(app_compose: &[u8]) -> B256 {
    B256(Sha256::digest(app_compose).into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tcb_rule_tests {
    use super::Policy;

    fn sa(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_default_is_up_to_date_with_no_advisory_and_a_list_narrows_advisories() {
        let default = Policy::default();
        assert!(default.accepts_tcb("UpToDate", &[]));
        assert!(!default.accepts_tcb("UpToDate", &sa(&["INTEL-SA-00837"])), "dstack KMS's rule");
        assert!(!default.accepts_tcb("SWHardeningNeeded", &[]));
        // Statuses named, advisories not: any advisory (as before the list).
        let named =
            Policy { tcb_status: sa(&["UpToDate", "SWHardeningNeeded"]), ..Policy::default() };
        assert!(named.accepts_tcb("SWHardeningNeeded", &sa(&["INTEL-SA-00837"])));
        assert!(!named.accepts_tcb("OutOfDate", &[]));
        // Advisories listed: only those.
        let listed = Policy { tcb_advisories: Some(sa(&["INTEL-SA-00837"])), ..named.clone() };
        assert!(listed.accepts_tcb("SWHardeningNeeded", &sa(&["INTEL-SA-00837"])));
        assert!(
            !listed.accepts_tcb("SWHardeningNeeded", &sa(&["INTEL-SA-00837", "INTEL-SA-00960"]))
        );
        let none = Policy { tcb_advisories: Some(vec![]), ..named };
        assert!(!none.accepts_tcb("SWHardeningNeeded", &sa(&["INTEL-SA-00837"])));
        assert!(none.accepts_tcb("UpToDate", &[]));
        // The field round-trips through TOML.
        let text = toml::to_string(&listed).unwrap();
        assert!(text.contains("tcb_advisories"), "{text}");
        assert_eq!(toml::from_str::<Policy>(&text).unwrap(), listed);
    }
}
