//! `tee-signer`: the ERC-8004 TEE signer's command-line tool.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tee_core::ActionKind;
use tee_std::demo;

#[derive(Parser)]
#[command(version, about = "Sign ERC-8004 agent actions with a key held in a TEE")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign a sample ERC-8004 action with the fixed demo key and print the
    /// action, its digest, the signature and the recovered address.
    Demo {
        /// Action kind to sign (e.g. AgentWalletSet, setAgentURI, giveFeedback);
        /// `--kind list` lists them.
        #[arg(long, default_value = "AgentWalletSet")]
        kind: String,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Demo { kind } => {
            if kind == "list" {
                for k in ActionKind::ALL {
                    println!("{:<36} {}", k.name(), if k.is_blind() { "blind" } else { "typed" });
                }
                return ExitCode::SUCCESS;
            }
            let Some(kind) = demo::kind_by_name(&kind) else {
                eprintln!("unknown action kind {kind:?}; `--kind list` lists them");
                return ExitCode::from(2);
            };
            match demo::run(kind) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("demo failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
