//! `superopt`: finds a faster MLX program that computes the same thing.

mod cli;
mod commands;
mod kernels;
mod lint;
mod model;
mod run;
mod suite;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Die quietly when the reader of stdout goes away (`superopt ... | head`), as Unix tools do.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = <cli::Cli as clap::Parser>::parse();
    match commands::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
