//! Shared by the integration tests: paths into the source tree, a reader for the golden
//! safetensors files (written by the PyTorch reference, tests/reference/make_goldens.py), and
//! model directories assembled from golden checkpoints plus the fixture tokenizer.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

/// The repository root (bindings/rust/densemllm/../../..).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..").canonicalize().unwrap()
}

pub fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures").join(rel)
}

/// A fresh directory under the target dir's tmp, unique per test and process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A model directory: the golden case's config.json and model.safetensors, plus the fixture
/// tokenizer when `tokenizer` (as tests/support_model_dir.c makes them).
pub fn model_dir(name: &str, case: &str, tokenizer: bool) -> PathBuf {
    let dir = temp_dir(name);
    let golden = fixture("golden").join(case);
    for file in ["config.json", "model.safetensors"] {
        std::os::unix::fs::symlink(golden.join(file), dir.join(file)).unwrap();
    }
    if tokenizer {
        std::os::unix::fs::symlink(fixture("tokenizer/tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    }
    dir
}

/// models/tiny of the source tree (the trained default model: config.json, weights, tokenizer,
/// readout profile, sample.png, training.json), or None while it is absent.
pub fn tiny_model() -> Option<PathBuf> {
    let dir = repo().join("models/tiny");
    if dir.join("config.json").exists() {
        Some(dir)
    } else {
        println!("models/tiny is absent: skipped");
        None
    }
}

/// One tensor of a safetensors file.
pub struct Tensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl Tensor {
    pub fn f32(&self) -> Vec<f32> {
        assert_eq!(self.dtype, "F32");
        self.bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
    }

    pub fn i32(&self) -> Vec<i32> {
        assert_eq!(self.dtype, "I32");
        self.bytes.chunks(4).map(|b| i32::from_le_bytes(b.try_into().unwrap())).collect()
    }
}

/// The numbers of the JSON array that follows `key` in `text`.
fn array_after(text: &str, key: &str) -> Vec<usize> {
    let start = text.find(key).unwrap_or_else(|| panic!("{key} missing")) + key.len();
    let open = start + text[start..].find('[').unwrap() + 1;
    let close = open + text[open..].find(']').unwrap();
    text[open..close].split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect()
}

/// Reads tensor `name` of a safetensors file: an 8-byte little-endian header length, a JSON
/// header {"name": {"dtype", "shape", "data_offsets"}, ...}, then the data.
pub fn tensor(path: &Path, name: &str) -> Tensor {
    let file = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&file[8..8 + n]).unwrap();
    let entry_start =
        header.find(&format!("\"{name}\":")).unwrap_or_else(|| panic!("{name} not in {}", path.display()));
    let entry = &header[entry_start..entry_start + header[entry_start..].find('}').unwrap()];
    let dtype_at = entry.find("\"dtype\"").unwrap();
    let dtype = entry[dtype_at..].split('"').nth(3).unwrap().to_owned();
    let shape = array_after(entry, "\"shape\"");
    let offsets = array_after(entry, "\"data_offsets\"");
    let data = &file[8 + n..];
    Tensor { dtype, shape, bytes: data[offsets[0]..offsets[1]].to_vec() }
}

/// max |a - b| / max |b|: the golden tolerance measure (tests/fixtures/golden/README.md).
pub fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}
