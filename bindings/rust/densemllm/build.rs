//! Gives this crate's tests and examples an rpath to the library directory densemllm-sys found
//! (its build script's `lib_dirs` metadata): a link argument of a build script reaches only the
//! targets of its own package.
fn main() {
    if let Ok(dirs) = std::env::var("DEP_DENSEMLLM_LIB_DIRS") {
        for dir in dirs.split(':').filter(|d| !d.is_empty()) {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
}
