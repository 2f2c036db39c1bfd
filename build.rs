//! napi's link setup, plus the versions of deltalake and arrow read from Cargo.lock so the
//! addon can report exactly what it was built with.

fn locked_version(lock: &str, name: &str) -> String {
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.find(&needle)
        .map(|at| {
            let rest = &lock[at + needle.len()..];
            rest[..rest.find('"').unwrap_or(0)].to_string()
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn main() {
    napi_build::setup();
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!(
        "cargo:rustc-env=KDR_DELTALAKE_VERSION={}",
        locked_version(&lock, "deltalake")
    );
    println!(
        "cargo:rustc-env=KDR_ARROW_VERSION={}",
        locked_version(&lock, "arrow")
    );
}
