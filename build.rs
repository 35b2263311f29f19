//! Link options of the `newswatch` binary (issue 22, memory).
//!
//! Linux with GNU ld or lld: the executable's relative relocations are packed (`-z
//! pack-relative-relocs`, DT_RELR). The binary is position-independent (PIE, so the kernel places
//! it at a random address), and the dynamic loader patches every absolute address in its tables
//! at start; as classic RELA entries those are 24 bytes each, ~95,000 of them (2.3 MB, all read at
//! every start and resident for the process's life). Packed, they take a few KB and the
//! executable keeps its address randomisation. Needs glibc 2.36 or later at run time (Debian 12),
//! which the binary then requires by symbol version (`GLIBC_ABI_DT_RELR`), so it fails to start,
//! with a loader error, rather than misbehaving, on an older glibc.
//! Only the binary is linked so: tests and benches keep the defaults.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo::rustc-link-arg-bin=newswatch=-Wl,-z,pack-relative-relocs");
    }
}
