//! `tee-signer`: the ERC-8004 TEE signer's command-line tool (`tee_std::cli`).

fn main() -> std::process::ExitCode {
    tee_std::cli::main()
}
