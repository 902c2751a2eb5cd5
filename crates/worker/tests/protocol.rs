//! Both sides of the worker protocol agree: the Python worker answers exactly the
//! commands of `protocol::Command` and spells the shared names and constants as Rust does.

use std::io::Write;
use std::process::{Command, Stdio};
use superopt_worker::protocol::{self, ProgramId, Size, Variant};

const DUMP: &str = r#"
import json, sys
w = {"__name__": "superopt_worker"}
exec(compile(sys.stdin.read(), "superopt_worker.py", "exec"), w)
print(json.dumps({
    "commands": sorted(w["COMMANDS"]),
    "sizes": list(w["SIZES"]),
    "variants": list(w["VARIANTS"]),
    "reserved": [w["ORIGINAL"], w["COMPILED_ORIGINAL"]],
    "sample_seconds": w["SAMPLE_SECONDS"],
}))
"#;

fn python_side() -> serde_json::Value {
    let python = superopt_worker::find_python(None, &|_| {}).expect("a Python with MLX").path;
    let mut child =
        Command::new(python).args(["-c", DUMP]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(superopt_worker::WORKER_SOURCE.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_python_worker_speaks_the_rust_protocol() {
    let py = python_side();
    let mut commands: Vec<&str> = protocol::Command::ALL.iter().map(|c| c.name()).collect();
    commands.sort();
    assert_eq!(py["commands"], serde_json::json!(commands));
    assert_eq!(py["sizes"], serde_json::json!(Size::ALL.map(Size::name)));
    assert_eq!(py["variants"], serde_json::json!(Variant::ALL.map(Variant::name)));
    assert_eq!(py["reserved"], serde_json::json!([ProgramId::Original.name(), ProgramId::CompiledOriginal.name()]));
    assert_eq!(py["sample_seconds"].as_f64(), Some(protocol::SAMPLE_SECONDS));
}
