//! A PostgreSQL cluster of a test's own, for tests that restart the server
//! or need TLS (the shared one at TEE_SIGNER_TEST_PG serves the other tests
//! at the same time). Made with the server binaries at
//! TEE_SIGNER_TEST_PG_BIN (`.ci/postgres` sets it), run as the `postgres`
//! user when the tests run as root, in a temporary directory; TLS with a
//! throwaway CA made by `openssl`. Stopped when dropped.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, reason = "test set-up")]

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster of the test's own.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    tls: bool,
    /// Server options given at every start (`-c name=value …`): on the
    /// command line, so a standby copied from this cluster does not
    /// inherit them.
    options: String,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster").field("dir", &self.dir.path()).field("port", &self.port).finish()
    }
}

/// Whether the tests run as root (asked once).
fn root() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| {
        let out = Command::new("id").arg("-u").output().expect("id -u");
        String::from_utf8_lossy(&out.stdout).trim() == "0"
    })
}

/// `program args…` as the `postgres` user (the server refuses root).
fn as_postgres(program: &Path, args: &[&str]) -> Command {
    if root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

fn run(mut c: Command) {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let mut c = Command::new("openssl");
    c.current_dir(dir).args(args);
    run(c);
}

impl Cluster {
    /// A new cluster on a free TCP port of 127.0.0.1 (and a unix socket in
    /// its directory), with TLS if `tls`: the server's certificate for
    /// `localhost` signed by [`Cluster::ca`].
    pub fn start(tls: bool) -> Cluster {
        Cluster::start_with(tls, "")
    }

    fn bin() -> PathBuf {
        PathBuf::from(std::env::var("TEE_SIGNER_TEST_PG_BIN").expect(
            "TEE_SIGNER_TEST_PG_BIN is not set: these tests start a PostgreSQL server of their \
             own (bash .ci/run sets it; by hand: source .ci/postgres)",
        ))
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// [`Cluster::start`] with server `options` (`-c name=value …`) at
    /// every start.
    pub fn start_with(tls: bool, options: &str) -> Cluster {
        let bin = Cluster::bin();
        let dir = tempfile::Builder::new().prefix("pg-").tempdir().unwrap();
        let port = Cluster::free_port();
        if tls {
            let d = dir.path();
            let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
            for ca in ["ca", "other-ca"] {
                let (key, crt, subject) =
                    (format!("{ca}.key"), format!("{ca}.crt"), format!("/CN={ca}"));
                let tail = ["-days", "2", "-subj", &subject, "-keyout", &key, "-out", &crt];
                openssl(d, &[&["req", "-x509"][..], &ec, &tail].concat());
            }
            let tail = ["-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"];
            openssl(d, &[&["req"][..], &ec, &tail].concat());
            std::fs::write(
                d.join("server.ext"),
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
            )
            .unwrap();
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    "server.ext",
                    "-out",
                    "server.crt",
                ],
            );
            // The server refuses a key others can read.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600))
                .unwrap();
        }
        if root() {
            let mut c = Command::new("chown");
            c.args(["-R", "postgres:"]).arg(dir.path());
            run(c);
        }
        let cluster = Cluster { dir, bin, port, tls, options: options.to_owned() };
        run(as_postgres(
            &cluster.bin.join("initdb"),
            &["-D", &cluster.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        ));
        cluster.pg_ctl(&["start"]);
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn pg_ctl(&self, action: &[&str]) {
        let d = self.dir.path().display();
        let ssl = if self.tls {
            format!(" -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key")
        } else {
            String::new()
        };
        let options =
            format!("-c listen_addresses=127.0.0.1 -p {} -k {d}{ssl} {}", self.port, self.options);
        let log = format!("{d}/log");
        let data = self.data();
        let args =
            [action, &["-D", &data, "-l", &log, "-w", "-m", "fast", "-o", &options]].concat();
        run(as_postgres(&self.bin.join("pg_ctl"), &args));
    }

    /// Stops the server (every session ends).
    pub fn stop(&self) {
        self.pg_ctl(&["stop"]);
    }

    /// A streaming standby of `primary` (plain text, no options of the
    /// primary's), copied by `pg_basebackup` and started on a port of its
    /// own, connecting as `application_name` `name` (what
    /// `synchronous_standby_names` names).
    pub fn standby_of(primary: &Cluster, name: &str) -> Cluster {
        let dir = tempfile::Builder::new().prefix("pg-standby-").tempdir().unwrap();
        if root() {
            let mut c = Command::new("chown");
            c.args(["-R", "postgres:"]).arg(dir.path());
            run(c);
        }
        let cluster = Cluster {
            dir,
            bin: Cluster::bin(),
            port: Cluster::free_port(),
            tls: false,
            options: String::new(),
        };
        let port = primary.port.to_string();
        run(as_postgres(
            &cluster.bin.join("pg_basebackup"),
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-D", &cluster.data()],
        ));
        // standby.signal: start as a standby; primary_conninfo: where from,
        // and the name the primary knows it by.
        let data = cluster.dir.path().join("data");
        std::fs::write(data.join("standby.signal"), "").unwrap();
        let mut conf = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
        conf.push_str(&format!(
            "primary_conninfo = 'host=127.0.0.1 port={port} user=postgres application_name={name}'\n"
        ));
        std::fs::write(data.join("postgresql.auto.conf"), conf).unwrap();
        if root() {
            let mut c = Command::new("chown");
            c.args(["-R", "postgres:"]).arg(&data);
            run(c);
        }
        cluster.pg_ctl(&["start"]);
        cluster
    }

    /// Kills the server as a crash would (`immediate`: no checkpoint, its
    /// sessions cut).
    pub fn kill(&self) {
        let data = self.data();
        run(as_postgres(&self.bin.join("pg_ctl"), &["stop", "-D", &data, "-m", "immediate", "-w"]));
    }

    /// Promotes this standby to a primary (and waits until it is one).
    pub fn promote(&self) {
        let data = self.data();
        run(as_postgres(&self.bin.join("pg_ctl"), &["promote", "-D", &data, "-w"]));
    }

    /// Starts the stopped server again.
    pub fn start_again(&self) {
        self.pg_ctl(&["start"]);
    }

    /// Over TCP to `localhost`, `extra` appended (e.g. `sslmode=require
    /// sslrootcert=…`).
    #[must_use]
    pub fn url(&self, extra: &str) -> String {
        format!("host=localhost port={} user=postgres dbname=postgres {extra}", self.port)
    }

    /// The TCP port (on 127.0.0.1).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Over the unix socket (never TLS), for a test's own look at the server.
    #[must_use]
    pub fn socket_url(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.path().display(),
            self.port
        )
    }

    /// The CA that signed the server's certificate.
    #[must_use]
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A CA that did not.
    #[must_use]
    pub fn other_ca(&self) -> PathBuf {
        self.dir.path().join("other-ca.crt")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ =
            as_postgres(&self.bin.join("pg_ctl"), &["stop", "-D", &data, "-m", "immediate", "-w"])
                .output();
    }
}
