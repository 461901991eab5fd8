//! A process in the middle of the admin's connection, as an attacker
//! shares the signer's socket volume: it reads, holds, drops, replays and
//! rewrites frames between the admin tool (tee-client) and the real
//! signer (the server over a unix socket, dstack simulated). Whatever it
//! does, the tool never reports a command done that the device did not
//! apply, never signs a counter it did not read from the device's signed
//! statement, and the device never accepts a counter that would lock the
//! admin out or a held command twice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tee_client::admin::{Trust, Unauthenticated};
use tee_client::{Client, ClientError};
use tee_core::codec;
use tee_core::frame::{self, Accumulator, Header};
use tee_core::primitives::keccak256;
use tee_core::protocol::*;
use tee_core::{Action, Address, B256, SigningKey};
use tee_host::backend::{SignerConfig, open_device};
use tee_host::server::{Limits, ServerHandle, serve};
use tee_sim::{SimDstack, SimServer};
use tee_testkit::ADMIN_SECRET;
use tee_transport::{Endpoint, Stream, connect};

const TIMEOUT: Duration = Duration::from_secs(10);

/// What the middleman does with one frame.
enum Verdict {
    /// Passes it on.
    Pass,
    /// A request: not passed on, answered with this response body.
    Answer(Vec<u8>),
    /// A response: replaced by this body.
    Replace(Vec<u8>),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    Request,
    Response,
}

type Script = Box<dyn FnMut(Dir, &Header, &[u8]) -> Verdict + Send>;

/// The middleman: a unix socket in front of the signer's, running a script
/// over every frame, and keeping a copy of every request.
struct Mitm {
    path: PathBuf,
    script: Arc<Mutex<Script>>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Reads whole frames off a stream.
struct Frames {
    acc: Box<Accumulator<MAX_RESPONSE_FRAME>>,
    pending: Vec<u8>,
}

impl Frames {
    fn new() -> Frames {
        Frames { acc: Box::new(Accumulator::new()), pending: Vec::new() }
    }

    /// The next frame's payload (header and body); `None` at the end.
    fn next(&mut self, s: &mut UnixStream) -> Option<Vec<u8>> {
        loop {
            while !self.pending.is_empty() {
                let input = std::mem::take(&mut self.pending);
                let (f, rest) = self.acc.feed(&input);
                let f = f.map(|r| r.map(<[u8]>::to_vec));
                self.pending = rest.to_vec();
                if let Some(Ok(payload)) = f {
                    return Some(payload);
                }
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

fn write_frame(s: &mut UnixStream, h: &Header, body: &[u8]) {
    let mut buf = vec![0u8; 2 * body.len() + 64];
    let f = frame::encode_raw(h, body, &mut buf).unwrap();
    let _ = s.write_all(f);
}

impl Mitm {
    fn start(dir: &Path, upstream: PathBuf) -> Mitm {
        let path = dir.join("mitm.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Box::new(|_, _, _| Verdict::Pass)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (script.clone(), requests.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let mut up = UnixStream::connect(&upstream).unwrap();
                let (mut from_client, mut from_up) = (Frames::new(), Frames::new());
                while let Some(req) = from_client.next(&mut client) {
                    r.lock().unwrap().push(req.clone());
                    let (h, body) = Header::split(&req).unwrap();
                    let verdict = (s.lock().unwrap())(Dir::Request, &h, body);
                    let (rh, rbody) = match verdict {
                        Verdict::Answer(b) => (h, b),
                        _ => {
                            write_frame(&mut up, &h, body);
                            let Some(resp) = from_up.next(&mut up) else { break };
                            let (rh, rbody) = Header::split(&resp).unwrap();
                            match (s.lock().unwrap())(Dir::Response, &rh, rbody) {
                                Verdict::Replace(b) => (rh, b),
                                _ => (rh, rbody.to_vec()),
                            }
                        }
                    };
                    write_frame(&mut client, &rh, &rbody);
                }
            }
        });
        Mitm { path, script, requests }
    }

    fn script(&self, f: impl FnMut(Dir, &Header, &[u8]) -> Verdict + Send + 'static) {
        *self.script.lock().unwrap() = Box::new(f);
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::Unix(self.path.clone())
    }

    /// The last request the tool sent with command `code`, as sent.
    fn captured(&self, code: u8) -> Vec<u8> {
        let all = self.requests.lock().unwrap();
        all.iter().rev().find(|p| Header::split(p).unwrap().0.command == code).unwrap().clone()
    }
}

/// A response body: the command's answer.
fn ok<C: Command>(r: &C::Response<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; 1024];
    codec::encode(&Ok::<_, DeviceError>(r), &mut buf).unwrap().to_vec()
}

/// A response body: a refusal.
fn refused<C: Command>(e: DeviceError) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    codec::encode(&Err::<C::Response<'_>, _>(e), &mut buf).unwrap().to_vec()
}

struct Rig {
    _dir: tempfile::TempDir,
    _dstack: SimServer,
    _server: ServerHandle,
    signer: Endpoint,
    mitm: Mitm,
    trust: Trust,
}

fn admin_key() -> SigningKey {
    SigningKey::from_bytes(&ADMIN_SECRET).unwrap()
}

fn client(e: &Endpoint) -> Client<Box<dyn Stream>> {
    Client::new(connect(e, TIMEOUT).unwrap())
}

/// A signer with a key in slot 0 under a permissive policy, behind a
/// middleman; `trust` pins its identity.
fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimDstack::new(&[0x11; 32], [0x22; 20], [0x33; 32]).unwrap();
    let dstack = SimServer::start(sim, &Endpoint::Unix(dir.path().join("dstack.sock"))).unwrap();
    let device = open_device(&SignerConfig {
        state: dir.path().join("state"),
        dstack: Some(dstack.endpoint().to_owned()),
        kind: BackendKind::Simulated,
        admin: Some(admin_key().address()),
        marks: None,
        accept_async_standbys: false,
    })
    .unwrap();
    let identity = device.identity();
    let socket = dir.path().join("signer.sock");
    let device = Arc::new(Mutex::new(*device));
    let server = serve(device, &[Endpoint::Unix(socket.clone())], Limits::default()).unwrap();
    let signer = Endpoint::Unix(socket.clone());
    let mut c = client(&signer);
    let device_id = c.call(&DeviceInfo).unwrap().device_id;
    let mut trust = Trust { device_id, identity };
    assert!(identity.is_some());
    c.admin_confirmed(
        GenerateKey { slot: 0, replace: false, auth: AdminAuth::UNSIGNED },
        &admin_key(),
        &mut trust,
    )
    .unwrap();
    let set = SetPolicy { slot: 0, policy: loose(), auth: AdminAuth::UNSIGNED };
    c.admin_confirmed(set, &admin_key(), &mut trust).unwrap();
    let mitm = Mitm::start(dir.path(), socket);
    Rig { _dir: dir, _dstack: dstack, _server: server, signer, mitm, trust }
}

fn loose() -> Policy {
    tee_testkit::typed_policy()
}

fn tight() -> Policy {
    Policy::default()
}

fn policy_hash(p: &Policy) -> B256 {
    let mut buf = [0u8; 1024];
    keccak256(codec::encode(p, &mut buf).unwrap())
}

fn tighten(rig: &Rig) -> Result<AdminStateResponse, ClientError> {
    let mut trust = rig.trust;
    let cmd = SetPolicy { slot: 0, policy: tight(), auth: AdminAuth::UNSIGNED };
    client(&rig.mitm.endpoint()).admin_confirmed(cmd, &admin_key(), &mut trust)
}

/// The device's policy for slot 0, read directly.
fn policy_now(rig: &Rig) -> Policy {
    client(&rig.signer).call(&GetPolicy { slot: 0 }).unwrap()
}

fn last_counter(rig: &Rig) -> u64 {
    let mut trust = rig.trust;
    client(&rig.signer).admin_state(DEVICE_SLOT, &mut trust).unwrap().statement.last_counter
}

fn unauthenticated(r: Result<AdminStateResponse, ClientError>) -> Unauthenticated {
    match r {
        Err(ClientError::Unauthenticated(u)) => u,
        r => panic!("expected an unauthenticated answer, got {r:?}"),
    }
}

/// Through an honest middle, the tightening is applied and confirmed.
#[test]
fn an_honest_path_confirms() {
    let rig = rig();
    let state = tighten(&rig).unwrap();
    assert_eq!(state.statement.policy_hash, policy_hash(&tight()));
    assert_eq!(state.statement.last_counter, 3);
    assert_eq!(policy_now(&rig), tight());
}

/// The attack the issue names: the middleman claims the device's last
/// counter is u64::MAX - 1, so the old tool signed at u64::MAX, and the
/// middleman held that copy to replay it later (loosening the policy back
/// and locking the admin out). Now the tool takes the counter only from a
/// statement signed by the device's identity: a forged statement fails
/// before anything is signed, and the device itself would refuse a jump.
#[test]
fn a_forged_counter_is_never_signed() {
    let rig = rig();
    let forger = SigningKey::from_bytes(&[0x66; 32]).unwrap();
    let forged_identity = forger.address();
    let device_id = rig.trust.device_id;
    rig.mitm.script(move |dir, h, body| match (dir, h.command) {
        (Dir::Response, AdminState::CODE) => {
            let real: Result<AdminStateResponse, DeviceError> = codec::decode(body).unwrap();
            let mut statement = real.unwrap().statement;
            statement.last_counter = u64::MAX - 1;
            // Any EIP-712 signer can sign a statement; only the identity's
            // is the device's.
            let prehashed = tee_core::action::Eip712Prehashed {
                domain_separator: admin_domain_separator(&device_id),
                struct_hash: statement.struct_hash(),
            };
            let signature = forger.sign(&Action::Eip712Prehashed(prehashed)).unwrap().signature;
            let forged = AdminStateResponse { identity: forger.address(), statement, signature };
            Verdict::Replace(ok::<AdminState>(&forged))
        }
        // The old attack's opening: a fake AdminReplay for any command.
        (Dir::Request, SetPolicy::CODE) => {
            Verdict::Answer(refused::<SetPolicy>(DeviceError::AdminReplay { last: u64::MAX - 1 }))
        }
        _ => Verdict::Pass,
    });
    let u = unauthenticated(tighten(&rig));
    assert_eq!(
        u,
        Unauthenticated::OtherIdentity {
            trusted: rig.trust.identity.unwrap(),
            got: forged_identity
        }
    );
    // Nothing was signed: no SetPolicy went through the middle at all.
    let sent = rig.mitm.requests.lock().unwrap();
    assert!(sent.iter().all(|p| Header::split(p).unwrap().0.command != SetPolicy::CODE));
    drop(sent);

    // And the device refuses a jumped counter however it was signed: an
    // admin tricked into signing at u64::MAX cannot lock itself out.
    let mut c = client(&rig.signer);
    let mut jump = SetPolicy { slot: 0, policy: loose(), auth: AdminAuth::UNSIGNED };
    authorize(&mut jump, &admin_key(), &device_id, u64::MAX).unwrap();
    let r = c.call(&jump);
    assert!(matches!(r, Err(ClientError::Device(DeviceError::AdminReplay { last: 2 }))), "{r:?}");
    // The honest admin goes on at last + 1.
    assert_eq!(last_counter(&rig), 2);
    let mut trust = rig.trust;
    let set = SetPolicy { slot: 0, policy: tight(), auth: AdminAuth::UNSIGNED };
    c.admin_confirmed(set, &admin_key(), &mut trust).unwrap();
    assert_eq!(last_counter(&rig), 3);
}

/// The middleman swallows a tightening and fakes `PolicySet` with the
/// hash the admin expects: the tool reports it was not applied, and the
/// device still holds the loose policy (nothing hidden).
#[test]
fn a_swallowed_tightening_is_not_reported_done() {
    let rig = rig();
    rig.mitm.script(|dir, h, _| match (dir, h.command) {
        (Dir::Request, SetPolicy::CODE) => Verdict::Answer(ok::<SetPolicy>(&PolicySet {
            slot: 0,
            policy_hash: policy_hash(&tight()),
        })),
        _ => Verdict::Pass,
    });
    let u = unauthenticated(tighten(&rig));
    assert_eq!(u, Unauthenticated::NotApplied { counter: 3, last_counter: 2 });
    assert_eq!(policy_now(&rig), loose());
}

/// The middleman passes the command on but answers "refused", so the admin
/// believes a loosening did not happen: the statement says it did.
#[test]
fn a_refusal_over_an_applied_command_is_caught() {
    let rig = rig();
    rig.mitm.script(|dir, h, _| match (dir, h.command) {
        (Dir::Response, SetPolicy::CODE) => {
            Verdict::Replace(refused::<SetPolicy>(DeviceError::Unauthorized))
        }
        _ => Verdict::Pass,
    });
    let u = unauthenticated(tighten(&rig));
    assert!(matches!(u, Unauthenticated::AppliedButRefused(_)), "{u:?}");
    assert_eq!(policy_now(&rig), tight());
}

/// The middleman drops the command and answers the confirmation with the
/// statement it recorded before it: another nonce, a replay.
#[test]
fn a_replayed_statement_is_caught() {
    let rig = rig();
    let recorded: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    rig.mitm.script(move |dir, h, body| match (dir, h.command) {
        (Dir::Response, AdminState::CODE) => {
            let mut r = recorded.lock().unwrap();
            match r.as_ref() {
                Some(first) => Verdict::Replace(first.clone()),
                None => {
                    *r = Some(body.to_vec());
                    Verdict::Pass
                }
            }
        }
        (Dir::Request, SetPolicy::CODE) => Verdict::Answer(ok::<SetPolicy>(&PolicySet {
            slot: 0,
            policy_hash: policy_hash(&tight()),
        })),
        _ => Verdict::Pass,
    });
    assert_eq!(unauthenticated(tighten(&rig)), Unauthenticated::Replayed);
    assert_eq!(policy_now(&rig), loose());
}

/// The middleman edits what the statement says (a policy hash) without
/// the identity's key: the signature no longer holds.
#[test]
fn an_edited_statement_is_caught() {
    let rig = rig();
    rig.mitm.script(|dir, h, body| match (dir, h.command) {
        (Dir::Response, AdminState::CODE) => {
            let real: Result<AdminStateResponse, DeviceError> = codec::decode(body).unwrap();
            let mut r = real.unwrap();
            r.statement.policy_hash = B256([0xee; 32]);
            Verdict::Replace(ok::<AdminState>(&r))
        }
        _ => Verdict::Pass,
    });
    assert_eq!(unauthenticated(tighten(&rig)), Unauthenticated::BadSignature);
}

/// A new key's address rewritten in the answer (so the admin would publish
/// the middleman's key as the agent's): it disagrees with the statement.
#[test]
fn a_rewritten_key_address_is_caught() {
    let rig = rig();
    rig.mitm.script(|dir, h, body| match (dir, h.command) {
        (Dir::Response, GenerateKey::CODE) => {
            let real: Result<PublicKeyResponse, DeviceError> = codec::decode(body).unwrap();
            let mut r = real.unwrap();
            r.address = Address([0x66; 20]);
            Verdict::Replace(ok::<GenerateKey>(&r))
        }
        _ => Verdict::Pass,
    });
    let mut trust = rig.trust;
    let cmd = GenerateKey { slot: 1, replace: false, auth: AdminAuth::UNSIGNED };
    let r = client(&rig.mitm.endpoint()).admin_confirmed(cmd, &admin_key(), &mut trust);
    assert_eq!(unauthenticated(r), Unauthenticated::Disagrees(1));
}

/// A command the middleman captured on its way is worth nothing later: the
/// device has used its counter.
#[test]
fn a_captured_command_cannot_be_replayed() {
    let rig = rig();
    // A loosening goes through (and is confirmed), then a tightening.
    let mut trust = rig.trust;
    let loosen = SetPolicy { slot: 0, policy: loose(), auth: AdminAuth::UNSIGNED };
    client(&rig.mitm.endpoint()).admin_confirmed(loosen, &admin_key(), &mut trust).unwrap();
    let captured = rig.mitm.captured(SetPolicy::CODE);
    tighten(&rig).unwrap();
    // The captured loosening, sent again as it was.
    let (h, body) = Header::split(&captured).unwrap();
    let mut s = UnixStream::connect(match &rig.signer {
        Endpoint::Unix(p) => p,
        _ => unreachable!(),
    })
    .unwrap();
    write_frame(&mut s, &h, body);
    let resp = Frames::new().next(&mut s).unwrap();
    let (_, r) = tee_core::client::decode_response::<SetPolicy>(&resp).unwrap();
    assert_eq!(r, Err(DeviceError::AdminReplay { last: 4 }));
    assert_eq!(policy_now(&rig), tight());
}

/// `get-policy --verify`'s check: a policy read through the middle that is
/// not the one the device states is caught.
#[test]
fn a_substituted_policy_read_is_caught() {
    let rig = rig();
    rig.mitm.script(|dir, h, _| match (dir, h.command) {
        (Dir::Response, GetPolicy::CODE) => Verdict::Replace(ok::<GetPolicy>(&tight())),
        _ => Verdict::Pass,
    });
    let mut c = client(&rig.mitm.endpoint());
    let read = c.call(&GetPolicy { slot: 0 }).unwrap();
    assert_eq!(read, tight());
    let mut trust = rig.trust;
    let stated = c.admin_state(0, &mut trust).unwrap().statement.policy_hash;
    assert_ne!(stated, policy_hash(&read));
    assert_eq!(stated, policy_hash(&loose()));
}
