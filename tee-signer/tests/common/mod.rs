//! What every CLI test shares: the binary, the admin's key, a signer
//! started as an operator starts it, the slot policy files.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_tee-signer");
pub const ADMIN_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
pub const ADMIN: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
pub const COLLATERAL: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/dcap-qvl/tdx_quote_collateral.json");

pub fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

pub fn fails(args: &[&str]) -> String {
    let o = run(args);
    assert!(!o.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn serve(state: &Path, socket: &Path, admin: Option<&str>) -> Server {
    serve_with(state, socket, admin, &[])
}

/// A signer without a TEE (`serve --no-tee`): it signs, and cannot attest.
pub fn serve_no_tee(state: &Path, socket: &Path) -> Server {
    start(&["serve", "--no-tee", "--state", state.to_str().unwrap()], socket, Some(ADMIN), &[])
}

pub fn serve_with(state: &Path, socket: &Path, admin: Option<&str>, extra: &[&str]) -> Server {
    start(&["serve", "--simulated", "--state", state.to_str().unwrap()], socket, admin, extra)
}

fn start(command: &[&str], socket: &Path, admin: Option<&str>, extra: &[&str]) -> Server {
    let listen = format!("unix:{}", socket.display());
    let mut args: Vec<&str> = command.to_vec();
    args.extend(extra);
    args.extend(["--listen", &listen]);
    if let Some(a) = admin {
        args.extend(["--admin", a]);
    }
    let mut child =
        Command::new(BIN).args(&args).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Ready when it logs "signer running" (after binding every endpoint);
    // its stderr ending first means it exited, and says why. The rest of
    // its log is drained so it never blocks on a full pipe.
    let mut log = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut log, &mut line).unwrap();
        assert!(n > 0, "the signer exited before it was running:\n{seen}");
        seen.push_str(&line);
        if line.contains("signer running") {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    assert!(socket.exists());
    Server(child)
}

/// Where a signer of a test lives in `dir`: its state directory, its
/// socket, and the `-c` argument that reaches it.
pub struct Paths {
    pub state: PathBuf,
    pub socket: PathBuf,
    pub conn: String,
}

pub fn paths(dir: &Path) -> Paths {
    let socket = dir.join("signer.sock");
    let conn = format!("unix:{}", socket.display());
    Paths { state: dir.join("state"), socket, conn }
}

/// The admin's key file in `dir` (the key of [`ADMIN`]), readable by its
/// owner only.
pub fn admin_key_file(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("admin.key");
    std::fs::write(&path, format!("0x{ADMIN_KEY}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A slot policy file in `dir` named `name`: `kinds` on Base, to the
/// identity registry, for agent 42, no value, the usual gas, fee and
/// deadline caps.
pub fn policy_file(dir: &Path, name: &str, kinds: &[&str]) -> String {
    let kinds = kinds.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "kinds = [{kinds}]\nchains = [8453]\n\
         contracts = [\"0x8004A169FB4a3325136EB29fA0ceB6D2e539a432\"]\nagents = [42]\n\
         max_value_wei = \"0\"\nmax_gas_limit = 500000\nmax_fee_per_gas_wei = \"100000000000\"\n\
         max_deadline_ahead_secs = 300\n"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A slot policy file in `dir` named `name`: `kinds` on any chain, to any
/// contract, for any agent, no value, generous gas and fee caps.
pub fn open_policy_file(dir: &Path, name: &str, kinds: &[&str]) -> String {
    let kinds = kinds.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>().join(", ");
    let text = format!(
        "kinds = [{kinds}]\nchains = \"any\"\ncontracts = \"any\"\nagents = \"any\"\n\
         max_value_wei = \"0\"\nmax_gas_limit = 10000000\nmax_fee_per_gas_wei = \"1000000000000\"\n\
         max_deadline_ahead_secs = 300\n"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `set-policy`'s arguments: the policy in `file` on slot 0 of the signer
/// at `conn`, with the admin's key in `key_file`.
pub fn set_policy_args<'a>(conn: &'a str, key_file: &'a str, file: &'a str) -> Vec<&'a str> {
    vec!["set-policy", "-c", conn, "--admin-key-file", key_file, "--policy", file]
}

/// Sets the policy in `file` on slot 0 of the signer at `conn`.
pub fn set_policy(conn: &str, key_file: &str, file: &str) {
    ok(&set_policy_args(conn, key_file, file));
}

/// Derives dstack's key for `path` into slot 0; its address.
pub fn derive_key(conn: &str, key_file: &str, path: &str) -> String {
    let derived = ok(&["derive-key", "-c", conn, "--admin-key-file", key_file, "--path", path]);
    let address = derived.split_whitespace().nth(2).unwrap().to_owned();
    assert!(address.starts_with("0x") && address.len() == 42, "{derived}");
    address
}
