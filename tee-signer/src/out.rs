//! Standard output for the `println!` and `print!` of this crate (its root
//! defines them): a reader that went away ends the process with the status
//! a shell gives a tool killed by SIGPIPE, never a panic.

use std::io::Write;

/// The exit status when standard output's reader has gone (128 + SIGPIPE).
pub const READER_GONE: i32 = 141;

fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut out = std::io::stdout().lock();
    let r = out.write_fmt(args).and_then(|()| if newline { out.write_all(b"\n") } else { Ok(()) });
    match r {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(READER_GONE),
        Err(e) => {
            eprintln!("tee-signer: standard output: {e}");
            std::process::exit(i32::from(crate::exit::FAILED));
        }
    }
}

/// A line.
pub fn line(args: std::fmt::Arguments<'_>) {
    write(args, true);
}

/// Text without a newline.
pub fn text(args: std::fmt::Arguments<'_>) {
    write(args, false);
}
