//! Helpers for the integration tests: run the real binary on real MLX.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

pub fn harness(rel: &str) -> PathBuf {
    repo().join(rel)
}

pub fn superopt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_superopt")).args(args).output().expect("the superopt binary runs")
}

pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}
