//! Running things: the signer (`serve`), the simulated dstack
//! (`sim-dstack`) and the end-to-end `demo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Args;
use tee_core::protocol::BackendKind;
use tee_core::{ActionKind, Address};

use super::{Failure, init_logging};
use tee_client::policyfile::kind_by_name;
use tee_host::backend::{SignerConfig, open_device};
use tee_host::dstack;
use tee_host::metrics::Metrics;
use tee_host::metrics::endpoint::serve_metrics;
use tee_host::server::{Limits, serve_metered};
use tee_sim::{SimDstack as Simulated, SimServer, Surfaces, deployment};
use tee_transport::Endpoint;

#[derive(Args)]
pub(super) struct Demo {
    /// Action kind to sign (AgentWalletSet, setAgentURI, giveFeedback,
    /// ...); `--kind list` lists them.
    #[arg(long, default_value = "AgentWalletSet")]
    kind: String,
}

#[derive(Args)]
pub(super) struct Serve {
    /// State directory (keys, policies, anti-replay counters).
    #[arg(long)]
    state: PathBuf,
    /// Where to listen (repeatable): unix:PATH, tcp:HOST:PORT, vsock:CID:PORT, serial:PATH[@BAUD].
    #[arg(long, required = true)]
    listen: Vec<Endpoint>,
    /// Where the admin connects (repeatable; same forms as --listen): its
    /// connections are counted apart, so an agent holding every place it
    /// may on --listen never locks the admin out. Give the agent no access
    /// to it (a unix socket in a directory only the admin mounts).
    #[arg(long)]
    admin_listen: Vec<Endpoint>,
    /// The admin address (required on the first start; checked after).
    #[arg(long)]
    admin: Option<Address>,
    /// dstack's endpoint (socket path or http URL); by default
    /// DSTACK_SIMULATOR_ENDPOINT or dstack's socket paths.
    #[arg(long, conflicts_with_all = ["simulated", "no_tee"])]
    dstack: Option<String>,
    /// Run the built-in simulated dstack and use it (no hardware guarantees).
    #[arg(long, conflicts_with = "no_tee")]
    simulated: bool,
    /// With --simulated: simulate the app of this app-compose file (its
    /// hash in the event log, its app id the hash's first 20 bytes)
    /// instead of the demo app: another app, other keys.
    #[arg(long, requires = "simulated")]
    simulated_app_compose: Option<PathBuf>,
    /// No TEE: generated keys only, no attestation.
    #[arg(long)]
    no_tee: bool,
    /// Connections served at once.
    #[arg(long, default_value_t = 64)]
    max_connections: usize,
    /// Listen on TCP addresses other than loopback: the network between the
    /// agent and the signer is trusted (anyone who reaches the port may ask
    /// for signatures within the policies).
    #[arg(long)]
    trusted_network: bool,
    /// Permission bits of unix sockets, octal: 600 (this user only) or 660
    /// (and its group: an agent in another container, on purpose).
    #[arg(long, default_value = "600", value_parser = socket_mode)]
    socket_mode: u32,
    /// Anti-replay marks shared with the app's other replicas, in this
    /// PostgreSQL database (a libpq URL or key=value string): every
    /// signature's (key, sequence) is claimed there first. Needs dstack.
    #[arg(long, conflicts_with = "no_tee")]
    marks: Option<String>,
    /// Serve metrics (Prometheus text, GET /metrics) and health (JSON,
    /// GET /health: 200 or 503) over HTTP at tcp:HOST:PORT or unix:PATH.
    /// They hold counts, never keys or actions; any address, so a scraper
    /// outside the CVM can reach it.
    #[arg(long)]
    metrics: Option<Endpoint>,
    /// Serve shared marks from a primary whose standbys are asynchronous
    /// (or that hides them from the signer's role). Without it the signer
    /// refuses such a database: a failover to an asynchronous standby can
    /// lose marks the primary acknowledged, and a replica that had not seen
    /// them would sign a second action at a used sequence.
    #[arg(long, requires = "marks")]
    marks_accept_async_standbys: bool,
}

fn socket_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s.trim_start_matches("0o"), 8) {
        Ok(m @ (0o600 | 0o660)) => Ok(m),
        Ok(m) => Err(format!("{m:o}: give 600 or 660 (others never get the signer's socket)")),
        Err(e) => Err(format!("not octal: {e}")),
    }
}

#[derive(Args)]
pub(super) struct SimDstack {
    /// unix:PATH or tcp:HOST:PORT.
    #[arg(long)]
    listen: Endpoint,
    /// Which guest-agent APIs to serve: `both` (as dstack 0.6: `/v1` and
    /// the frozen `/`, `/v0`), `v0` (as dstack 0.5, no `/v1`) or `v1`.
    #[arg(long, default_value = "both", value_parser = parse_surfaces)]
    api: Surfaces,
}

fn parse_surfaces(s: &str) -> Result<Surfaces, String> {
    match s {
        "both" => Ok(Surfaces::default()),
        "v0" => Ok(Surfaces::V0_ONLY),
        "v1" => Ok(Surfaces::V1_ONLY),
        other => Err(format!("{other:?}: give both, v0 or v1")),
    }
}

/// The demo app's simulated dstack.
fn demo_dstack() -> Result<Simulated, Failure> {
    Ok(Simulated::with_app_compose(
        &deployment::KMS_ROOT,
        deployment::APP_ID,
        deployment::APP_COMPOSE,
    )?)
}

pub(super) fn demo(c: Demo) -> Result<ExitCode, Failure> {
    if c.kind == "list" {
        for &k in ActionKind::ALL {
            println!("{:<36} {}", k.name(), if k.is_blind() { "blind" } else { "typed" });
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(kind) = kind_by_name(&c.kind) else {
        eprintln!("unknown action kind {:?}; `--kind list` lists them", c.kind);
        return Ok(ExitCode::from(2));
    };
    print!("{}", crate::demo::run(kind)?);
    Ok(ExitCode::SUCCESS)
}

pub(super) fn serve(c: Serve) -> Result<ExitCode, Failure> {
    init_logging();
    if !c.trusted_network {
        refuse_open_tcp(&c.listen)?;
        refuse_open_tcp(&c.admin_listen)?;
    }
    let mut sim = None;
    let (endpoint, kind) = if c.no_tee {
        // No hardware guarantees, and no quotes to show for it.
        (None, BackendKind::Simulated)
    } else if c.simulated {
        // The state directory is private: made as the store makes it.
        tee_store::store::create_private_dir(&c.state)?;
        let listen = Endpoint::Unix(c.state.join("sim-dstack.sock"));
        let app = match &c.simulated_app_compose {
            None => demo_dstack()?,
            Some(p) => {
                let compose = super::read(p)?;
                let app_id = deployment::app_id_of(&compose);
                Simulated::with_app_compose(&deployment::KMS_ROOT, app_id, &compose)?
            }
        };
        let server = SimServer::start(app, &listen)?;
        let e = server.endpoint().to_owned();
        sim = Some(server);
        (Some(e), BackendKind::Simulated)
    } else {
        let e = dstack::resolve_endpoint(c.dstack.as_deref()).ok_or(
            "no dstack found (--dstack, DSTACK_SIMULATOR_ENDPOINT or /var/run/dstack.sock); \
             --simulated runs the built-in simulator, --no-tee runs without a TEE",
        )?;
        (Some(e), BackendKind::Dstack)
    };
    let device = open_device(&SignerConfig {
        state: c.state,
        dstack: endpoint,
        kind,
        admin: c.admin,
        marks: c.marks,
        accept_async_standbys: c.marks_accept_async_standbys,
    })?;
    let limits = Limits {
        max_connections: c.max_connections,
        socket_mode: c.socket_mode,
        ..Limits::default()
    };
    let identity = device.identity().map(|a| a.to_string()).unwrap_or_default();
    let api = device.backend().dstack().map_or("none", |d| d.api().name());
    let metrics = c.metrics.as_ref().map(|_| Metrics::new());
    let device = Arc::new(Mutex::new(*device));
    let server = serve_metered(device, &c.listen, &c.admin_listen, limits, metrics.clone())?;
    let _metrics = match (&c.metrics, metrics) {
        (Some(at), Some(m)) => Some(serve_metrics(m, at)?),
        _ => None,
    };
    tracing::info!(simulated = sim.is_some(), %identity, dstack_api = api, "signer running");
    server.wait();
    Ok(ExitCode::SUCCESS)
}

/// A TCP listener that is not on loopback serves whoever reaches it: only
/// with `--trusted-network`.
fn refuse_open_tcp(listen: &[Endpoint]) -> Result<(), Failure> {
    use std::net::ToSocketAddrs;
    for e in listen {
        if let Endpoint::Tcp(addr) = e {
            let open = addr.to_socket_addrs()?.find(|a| !a.ip().is_loopback());
            if let Some(a) = open {
                return Err(super::exit::Invalid(format!(
                    "--listen {e}: {} is not a loopback address, so anyone who reaches it may ask \
                     for signatures; listen on 127.0.0.1 or a unix socket, or say \
                     --trusted-network",
                    a.ip()
                ))
                .into());
            }
        }
    }
    Ok(())
}

pub(super) fn sim_dstack(c: SimDstack) -> Result<ExitCode, Failure> {
    init_logging();
    let server = SimServer::start_with(demo_dstack()?, &c.listen, c.api)?;
    println!(
        "simulated dstack at {} (DSTACK_SIMULATOR_ENDPOINT={})",
        server.endpoint(),
        server.endpoint()
    );
    server.wait();
    Ok(ExitCode::SUCCESS)
}
