//! Running the Cortex-M4 firmware image under QEMU (`mps2-an386`), for the
//! over-the-wire test and the footprint report.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tee_client::Client;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Builds the firmware image (profile `firmware`: release, optimized for
/// size) and returns its path. It builds in `target/firmware`, apart from the
/// build running the tests, so it never waits on that build's lock.
pub fn image() -> PathBuf {
    let target_dir = workspace().join("target/firmware");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // The image as it ships: built by rustc, not through a lint wrapper a
    // gate may have exported (clippy-driver builds without MIR
    // optimizations: a larger image than the real one).
    let status = Command::new(cargo)
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .args([
            "build",
            "--profile",
            "firmware",
            "--locked",
            "-p",
            "firmware-sim",
            "--bin",
            "firmware",
        ])
        .args(["--features", "qemu", "--target", "thumbv7em-none-eabihf"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the firmware image builds");
    target_dir.join("thumbv7em-none-eabihf/firmware/firmware")
}

/// How to run QEMU.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `-icount shift=N`: virtual time advances 2^N ns per instruction,
    /// deterministically.
    pub icount: Option<u32>,
    /// Open the QEMU monitor on a unix socket.
    pub monitor: bool,
}

/// A running QEMU, killed on drop; its semihosting output is collected.
#[derive(Debug)]
pub struct Qemu {
    child: Child,
    dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn connect(path: &Path) -> UnixStream {
    let start = Instant::now();
    loop {
        match UnixStream::connect(path) {
            Ok(s) => return s,
            Err(_) if start.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("QEMU socket {}: {e}", path.display()),
        }
    }
}

impl Qemu {
    /// Boots `image`; returns QEMU and a client on UART0.
    pub fn boot(image: &Path, options: Options) -> (Qemu, Client<UnixStream>) {
        static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tee-qemu-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let uart = dir.join("uart.sock");
        let mut cmd = Command::new("qemu-system-arm");
        cmd.args(["-machine", "mps2-an386", "-cpu", "cortex-m4", "-display", "none"])
            .args(["-semihosting-config", "enable=on,target=native"])
            .arg("-serial")
            .arg(format!("unix:{},server=on,wait=off", uart.display()))
            .arg("-kernel")
            .arg(image)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(shift) = options.icount {
            cmd.args(["-icount", &format!("shift={shift}")]);
        }
        if options.monitor {
            cmd.arg("-monitor")
                .arg(format!("unix:{},server=on,wait=off", dir.join("monitor.sock").display()));
        } else {
            cmd.args(["-monitor", "none"]);
        }
        let mut child =
            cmd.spawn().expect("qemu-system-arm runs (apt-get install qemu-system-arm)");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("[firmware] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        let stream = connect(&uart);
        stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        (Qemu { child, dir, log }, Client::new(stream))
    }

    /// The firmware's semihosting output so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log has more than `n` lines; returns line `n`.
    pub fn line_after(&self, n: usize) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.log().get(n) {
                return l.clone();
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no log line {n}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Dumps `len` bytes of guest memory at `addr` through the monitor.
    pub fn dump(&self, addr: u32, len: u32) -> Vec<u8> {
        let out = self.dir.join("mem.bin");
        let mut mon = connect(&self.dir.join("monitor.sock"));
        writeln!(mon, "pmemsave {addr:#x} {len} \"{}\"", out.display()).unwrap();
        writeln!(mon, "info status").unwrap();
        // The monitor answers "info status" after the dump is written.
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        mon.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        while !seen.contains("VM status") {
            let n = mon.read(&mut buf).unwrap();
            assert!(n > 0, "monitor closed");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        std::fs::read(&out).unwrap()
    }
}
