//! `tee-signer`: the ERC-8004 TEE signer's command-line tool (`tee_signer`).

fn main() -> std::process::ExitCode {
    tee_signer::main()
}
