//! `tee-signer rpc`: the Ethereum JSON-RPC endpoint in front of the signer
//! and a node (`tee_rpc`), for tools that speak to a node (viem, ethers,
//! web3.py, `cast`, wallets).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tee_rpc::http::{DEFAULT_MAX_BODY, Options, RpcServer, StartError};
use tee_rpc::{Config, Gateway};
use tee_transport::Endpoint;
use zeroize::Zeroizing;

use super::{Conn, Failure, exit, init_logging};

#[derive(Args)]
pub(super) struct Rpc {
    #[command(flatten)]
    conn: Conn,
    /// A slot whose key the endpoint signs with (repeatable; its address is
    /// what `eth_accounts` lists).
    #[arg(long = "slot", default_values_t = [0u8])]
    slots: Vec<u8>,
    /// The node every other method is forwarded to, and that fills and
    /// receives transactions (http:// or https://).
    #[arg(long)]
    upstream: Option<String>,
    /// Where to listen: tcp:HOST:PORT (loopback unless --token-file) or unix:PATH.
    #[arg(long, default_value = "tcp:127.0.0.1:8545")]
    listen: Endpoint,
    /// A file holding the bearer token every request must carry
    /// (`Authorization: Bearer TOKEN`), readable by you only.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// An origin a browser page may call from (repeatable): CORS for it
    /// only. None by default: requests carrying an Origin are refused.
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY)]
    max_body: usize,
    /// How many signatures' attestations `tee_getAttestation` keeps.
    #[arg(long, default_value_t = 1024)]
    keep: usize,
}

fn token(path: &PathBuf) -> Result<String, Failure> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(exit::Invalid(format!(
                "{}: the token file is readable or writable by others; chmod 600 it",
                path.display()
            ))
            .into());
        }
    }
    let text = Zeroizing::new(super::read(path)?);
    let token = text.trim();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(exit::Invalid(format!(
            "{}: a token is at least 16 printable characters without spaces",
            path.display()
        ))
        .into());
    }
    Ok(token.to_owned())
}

pub(super) fn rpc(c: Rpc) -> Result<ExitCode, Failure> {
    init_logging();
    let token = c.token_file.as_ref().map(token).transpose()?;
    let config =
        Config { signer: c.conn.connect, slots: c.slots, upstream: c.upstream, keep: c.keep };
    let gateway = Gateway::open(&config)?;
    let accounts: Vec<String> =
        gateway.accounts().iter().map(|(slot, a)| format!("slot {slot} {a}")).collect();
    let mut options = Options::new(c.listen);
    options.token = token;
    options.cors_origins = c.cors_origins;
    options.max_body = c.max_body;
    let server = RpcServer::start(Arc::new(gateway), options).map_err(|e| -> Failure {
        match e {
            StartError::Io { .. } => e.into(),
            _ => exit::Invalid(e.to_string()).into(),
        }
    })?;
    let upstream = config.upstream.as_deref().unwrap_or("none");
    println!(
        "JSON-RPC endpoint at {} ({}; upstream {upstream})",
        server.url(),
        accounts.join(", ")
    );
    server.wait();
    Ok(ExitCode::SUCCESS)
}
