//! A zero-copy parser of Intel TDX DCAP quotes, versions 4 and 5.
//!
//! ```text
//! quote     = header (48) ‖ [v5: body_type u16 ‖ body_size u32] ‖ TD report ‖ auth_size u32 ‖ auth data
//! TD report = TD 1.0 (584 bytes; v4, or v5 body type 2)
//!           | TD 1.5 (648: TD 1.0 ‖ tee_tcb_svn2 16 ‖ mr_service_td 48; v5 body type 3)
//!           | TD 1.5 extended (885: TD 1.5 ‖ 237 more; v5 body type 4)
//! auth data = ecdsa_signature 64 ‖ attestation_key 64 ‖ cert_type u16 (= 6) ‖ cert_size u32 ‖
//!             qe_report 384 ‖ qe_report_signature 64 ‖ qe_auth_size u16 ‖ qe_auth ‖
//!             inner_cert_type u16 ‖ inner_cert_size u32 ‖ inner_cert (the PCK chain, type 5)
//! ```
//! All integers little-endian. Every field is a borrowed slice of the input;
//! nothing is copied or allocated. Every length is checked: input that ends
//! early is [`Error::Truncated`], bytes after a structure (inside the auth
//! data or the certification data beyond what their declared contents use,
//! or after the quote) are [`Error::TrailingBytes`], a declared size that
//! does not match its type is [`Error::Malformed`], and SGX quotes, other
//! versions, body types and attestation key types are [`Error::Unsupported`].
//!
//! One exception: zero bytes after the quote are accepted as padding. Quote
//! generation services hand quotes out in fixed-size buffers (dcap-qvl's v4
//! sample, from dstack's tappd, carries 70 zero bytes); the zeros carry no
//! information and no signature covers them. [`Quote::raw`] excludes them, so
//! the quote has one byte string to hash. A non-zero byte after the quote is
//! [`Error::TrailingBytes`].
//!
//! This is stricter than dcap-qvl's parser, which ignores trailing bytes and
//! the certification data type; the differential test names each difference.

use crate::error::{Error, Result};

/// Header bytes.
pub const HEADER_LEN: usize = 48;
/// TDX `tee_type`.
pub const TEE_TYPE_TDX: u32 = 0x81;
/// ECDSA-256-with-P-256 attestation key type, the only one DCAP uses.
pub const ATTESTATION_KEY_P256: u16 = 2;
/// Certification data type of v4/v5 auth data: QE report certification data.
pub const CERT_TYPE_QE_REPORT: u16 = 6;
/// Certification data type of a PCK certificate chain (PEM).
pub const CERT_TYPE_PCK_CHAIN: u16 = 5;

/// Which TD report the quote carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BodyType {
    /// TDX 1.0 (quote v4, or v5 body type 2).
    Td10,
    /// TDX 1.5 (v5 body type 3).
    Td15,
    /// TDX 1.5 extended (v5 body type 4).
    Td15Ex,
}

impl BodyType {
    /// The report's length in bytes.
    #[must_use]
    pub const fn len(self) -> usize {
        match self {
            BodyType::Td10 => 584,
            BodyType::Td15 => 648,
            BodyType::Td15Ex => 885,
        }
    }

    /// Never empty; for clippy's `len_without_is_empty`.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        false
    }
}

/// The quote header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// 4 or 5.
    pub version: u16,
    /// 2: ECDSA P-256.
    pub attestation_key_type: u16,
    /// 0x81: TDX.
    pub tee_type: u32,
    /// QE security version.
    pub qe_svn: u16,
    /// PCE security version.
    pub pce_svn: u16,
    /// QE vendor (Intel's is `939a7233f79c4ca9940a0db3957f0607`).
    pub qe_vendor_id: &'a [u8; 16],
    /// User data (for DCAP: the first 20 bytes of the QE identity).
    pub user_data: &'a [u8; 20],
}

/// The TD report: the measurements and the report data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdReport<'a> {
    /// TEE TCB security versions.
    pub tee_tcb_svn: &'a [u8; 16],
    /// Measurement of the TDX module.
    pub mr_seam: &'a [u8; 48],
    /// Signer of the TDX module (zero for Intel's).
    pub mr_signer_seam: &'a [u8; 48],
    /// TDX module attributes.
    pub seam_attributes: &'a [u8; 8],
    /// TD attributes (bit 0 of byte 0: debug).
    pub td_attributes: &'a [u8; 8],
    /// Extended features allowed.
    pub xfam: &'a [u8; 8],
    /// MRTD: the TD's initial contents (the virtual firmware).
    pub mr_td: &'a [u8; 48],
    /// Software-defined configuration id.
    pub mr_config_id: &'a [u8; 48],
    /// Software-defined owner id.
    pub mr_owner: &'a [u8; 48],
    /// Software-defined owner configuration.
    pub mr_owner_config: &'a [u8; 48],
    /// RTMR0..RTMR3: firmware, kernel, command line and initrd, and (dstack)
    /// runtime events such as the app's compose hash.
    pub rtmr: [&'a [u8; 48]; 4],
    /// The 64 bytes the TD chose ([`crate::binding`]).
    pub report_data: &'a [u8; 64],
    /// TDX 1.5: second TEE TCB SVN.
    pub tee_tcb_svn2: Option<&'a [u8; 16]>,
    /// TDX 1.5: measurement of the service TD.
    pub mr_service_td: Option<&'a [u8; 48]>,
    /// TDX 1.5 extended: the 237 added bytes (VM index, TD id, device info,
    /// service TD and initial TCB fields), as Intel's `sgx_quote_5.h` lays them out.
    pub td15_ex: Option<&'a [u8; 237]>,
}

/// The quote's signature section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthData<'a> {
    /// ECDSA P-256 signature (r ‖ s) over header and report, by the attestation key.
    pub ecdsa_signature: &'a [u8; 64],
    /// The attestation key (x ‖ y).
    pub attestation_key: &'a [u8; 64],
    /// The QE's SGX report, which binds the attestation key.
    pub qe_report: &'a [u8; 384],
    /// The PCK's signature over the QE report.
    pub qe_report_signature: &'a [u8; 64],
    /// QE authentication data.
    pub qe_auth_data: &'a [u8],
    /// Type of the inner certification data (5: PCK certificate chain).
    pub cert_type: u16,
    /// The inner certification data (for type 5, the PEM PCK chain).
    pub cert_data: &'a [u8],
}

/// A parsed TDX quote, borrowing the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote<'a> {
    /// The header.
    pub header: Header<'a>,
    /// Which TD report.
    pub body_type: BodyType,
    /// The TD report.
    pub report: TdReport<'a>,
    /// The signature section.
    pub auth: AuthData<'a>,
    /// The bytes the attestation key signed: header (and v5 body header) and report.
    pub signed: &'a [u8],
    /// The quote, without any zero padding that followed it.
    pub raw: &'a [u8],
    /// Zero bytes of padding that followed the quote.
    pub padding: usize,
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n).ok_or(Error::Truncated)?;
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<&'a [u8; N]> {
        self.take(N)?.try_into().map_err(|_| Error::Truncated)
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(*self.array()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(*self.array()?))
    }

    /// A length-prefixed part, as its own cursor.
    fn part(&mut self, len: usize) -> Result<Cursor<'a>> {
        Ok(Cursor(self.take(len)?))
    }

    fn end(&self) -> Result<()> {
        if self.0.is_empty() { Ok(()) } else { Err(Error::TrailingBytes) }
    }
}

fn len32(v: u32) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::TooLong)
}

impl<'a> Quote<'a> {
    /// Parses a TDX quote (v4 or v5). See the module documentation for the
    /// errors.
    pub fn parse(bytes: &'a [u8]) -> Result<Quote<'a>> {
        let mut c = Cursor(bytes);
        let header = Header {
            version: c.u16()?,
            attestation_key_type: c.u16()?,
            tee_type: c.u32()?,
            qe_svn: c.u16()?,
            pce_svn: c.u16()?,
            qe_vendor_id: c.array()?,
            user_data: c.array()?,
        };
        if header.tee_type != TEE_TYPE_TDX {
            return Err(Error::Unsupported);
        }
        if header.attestation_key_type != ATTESTATION_KEY_P256 {
            return Err(Error::Unsupported);
        }
        let body_type = match header.version {
            4 => BodyType::Td10,
            5 => {
                let ty = match c.u16()? {
                    2 => BodyType::Td10,
                    3 => BodyType::Td15,
                    4 => BodyType::Td15Ex,
                    _ => return Err(Error::Unsupported),
                };
                if len32(c.u32()?)? != ty.len() {
                    return Err(Error::Malformed);
                }
                ty
            }
            _ => return Err(Error::Unsupported),
        };
        let report = Self::report(c.part(body_type.len())?, body_type)?;
        let signed_len = bytes.len() - c.0.len();
        let signed = bytes.get(..signed_len).ok_or(Error::Truncated)?;

        let auth_len = len32(c.u32()?)?;
        let mut a = c.part(auth_len)?;
        let padding = c.0.len();
        if c.0.iter().any(|&b| b != 0) {
            return Err(Error::TrailingBytes);
        }
        let raw = bytes.get(..bytes.len() - padding).ok_or(Error::Truncated)?;
        let ecdsa_signature = a.array()?;
        let attestation_key = a.array()?;
        if a.u16()? != CERT_TYPE_QE_REPORT {
            return Err(Error::Malformed);
        }
        let cert_len = len32(a.u32()?)?;
        let mut q = a.part(cert_len)?;
        a.end()?;
        let qe_report = q.array()?;
        let qe_report_signature = q.array()?;
        let qe_auth_len = usize::from(q.u16()?);
        let qe_auth_data = q.take(qe_auth_len)?;
        let cert_type = q.u16()?;
        let inner_len = len32(q.u32()?)?;
        let cert_data = q.take(inner_len)?;
        q.end()?;
        Ok(Quote {
            header,
            body_type,
            report,
            auth: AuthData {
                ecdsa_signature,
                attestation_key,
                qe_report,
                qe_report_signature,
                qe_auth_data,
                cert_type,
                cert_data,
            },
            signed,
            raw,
            padding,
        })
    }

    fn report(mut r: Cursor<'a>, body_type: BodyType) -> Result<TdReport<'a>> {
        let mut report = TdReport {
            tee_tcb_svn: r.array()?,
            mr_seam: r.array()?,
            mr_signer_seam: r.array()?,
            seam_attributes: r.array()?,
            td_attributes: r.array()?,
            xfam: r.array()?,
            mr_td: r.array()?,
            mr_config_id: r.array()?,
            mr_owner: r.array()?,
            mr_owner_config: r.array()?,
            rtmr: [r.array()?, r.array()?, r.array()?, r.array()?],
            report_data: r.array()?,
            tee_tcb_svn2: None,
            mr_service_td: None,
            td15_ex: None,
        };
        if body_type != BodyType::Td10 {
            report.tee_tcb_svn2 = Some(r.array()?);
            report.mr_service_td = Some(r.array()?);
        }
        if body_type == BodyType::Td15Ex {
            report.td15_ex = Some(r.array()?);
        }
        r.end()?;
        Ok(report)
    }

    /// Whether the TD runs in debug mode (`td_attributes` bit 0), in which
    /// the host can read its memory: never acceptable for a signer.
    #[must_use]
    pub fn is_debug(&self) -> bool {
        self.report.td_attributes[0] & 1 == 1
    }
}
