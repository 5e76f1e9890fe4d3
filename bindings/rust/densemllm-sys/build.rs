//! Finds libdensemllm for linking: DMLLM_LIB_DIR when set (a build tree, as the CTest entry
//! passes), otherwise the `pkg-config` program. Only std is used, so no build dependency is needed.
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
            panic!(
                "libdensemllm not found: `pkg-config densemllm` failed and DMLLM_LIB_DIR is not set \
                 (set it to the CMake build directory that holds libdensemllm.so)"
            )
        }),
    };
    for dir in &dirs {
        println!("cargo:rustc-link-search=native={dir}");
        // The rpath lets `cargo test` and dependent binaries run from the build tree without
        // LD_LIBRARY_PATH.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rustc-link-lib=dylib=densemllm");
    // Read by dependents' build scripts as DEP_DENSEMLLM_LIB_DIRS.
    println!("cargo:lib_dirs={}", dirs.join(":"));
}
