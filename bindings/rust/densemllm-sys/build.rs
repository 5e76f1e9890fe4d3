//! Finds libdensemllm for linking: DMLLM_LIB_DIR when set (a build tree, as the CTest entry
//! passes), otherwise the `pkg-config` program. Only std is used, so no build dependency is needed.
//!
//! This package's own binaries get an rpath to the library; a link argument of a build script
//! reaches no other package, so dependents read the directories as DEP_DENSEMLLM_LIB_DIRS and give
//! themselves the rpath (README.md, "Using the crates from another project").
//!
//! Documentation builds need no library: with DOCS_RS or DENSEMLLM_NO_LINK set nothing is linked,
//! and a library that cannot be found is a warning (the link fails later, naming -ldensemllm),
//! since `cargo doc` never links.
use std::env;
use std::path::Path;
use std::process::Command;

/// Library directories from `pkg-config --libs-only-L densemllm`, or None when pkg-config or the
/// densemllm.pc file is missing.
fn pkg_config_dirs() -> Option<Vec<String>> {
    let out = Command::new("pkg-config").args(["--libs-only-L", "densemllm"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.split_whitespace().filter_map(|f| f.strip_prefix("-L")).map(str::to_owned).collect())
}

fn main() {
    println!("cargo:rerun-if-env-changed=DMLLM_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=DOCS_RS");
    println!("cargo:rerun-if-env-changed=DENSEMLLM_NO_LINK");
    if env::var_os("DOCS_RS").is_some() || env::var_os("DENSEMLLM_NO_LINK").is_some() {
        return;
    }
    // An explicit directory wins over an installed copy, so a build tree's tests link that tree's
    // library even on a machine that also has one installed.
    let dirs = match env::var("DMLLM_LIB_DIR") {
        Ok(dir) if !dir.is_empty() => {
            if !Path::new(&dir).join("libdensemllm.so").exists() {
                panic!("DMLLM_LIB_DIR={dir} holds no libdensemllm.so (build the C library first)");
            }
            vec![dir]
        }
        _ => pkg_config_dirs().unwrap_or_else(|| {
            println!(
                "cargo:warning=libdensemllm not found: `pkg-config densemllm` failed and \
                 DMLLM_LIB_DIR is not set (set it to the CMake build directory that holds \
                 libdensemllm.so); only `cargo doc` can work without it"
            );
            Vec::new()
        }),
    };
    for dir in &dirs {
        println!("cargo:rustc-link-search=native={dir}");
        // The rpath lets this package's tests run from the build tree without LD_LIBRARY_PATH.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rustc-link-lib=dylib=densemllm");
    // Read by dependents' build scripts as DEP_DENSEMLLM_LIB_DIRS.
    println!("cargo:lib_dirs={}", dirs.join(":"));
}
