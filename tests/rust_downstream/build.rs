//! The rpath to the library directories densemllm-sys linked, so the program runs without
//! LD_LIBRARY_PATH (a build script's link arguments reach only its own package's binaries).
//! The same as in bindings/rust/README.md.
fn main() {
    let dirs = std::env::var("DEP_DENSEMLLM_LIB_DIRS").unwrap_or_default();
    for dir in dirs.split(':').filter(|d| !d.is_empty()) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
