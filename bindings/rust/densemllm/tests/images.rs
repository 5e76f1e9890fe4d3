//! Images against tests/fixtures/images/expected.txt, which PIL 9.4 wrote (make_fixtures.py):
//! decoded sizes and FNV-1a hashes of the RGB bytes, resizes, target sizes and decoder errors.
use densemllm::{Image, ResizeMode, Status, target_size};
use std::path::PathBuf;

mod common;

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

/// "fixtures/<name>" is this fixture directory, "shared/<path>" the shared test data beside the
/// repository; None when the shared data is not there.
fn resolve(name: &str) -> Option<PathBuf> {
    if let Some(rest) = name.strip_prefix("fixtures/") {
        return Some(common::fixture("images").join(rest));
    }
    let path = common::repo().join("..").join(name);
    path.exists().then_some(path)
}

fn status_of(name: &str) -> Status {
    match name {
        "FORMAT" => Status::Format,
        "UNSUPPORTED" => Status::Unsupported,
        "IO" => Status::Io,
        "INVALID_ARGUMENT" => Status::InvalidArgument,
        other => panic!("unknown status {other} in expected.txt"),
    }
}

#[test]
fn expected_txt() {
    let text = std::fs::read_to_string(common::fixture("images/expected.txt")).unwrap();
    let (mut checked, mut skipped) = (0, 0);
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let int = |i: usize| f[i].parse::<i32>().unwrap();
        match f[0] {
            "target" => {
                assert_eq!(target_size(int(1), int(2), int(3)).unwrap(), (int(4), int(5)), "{line}");
            }
            kind => {
                let Some(path) = resolve(f[1]) else {
                    skipped += 1;
                    continue;
                };
                match kind {
                    "decode" => {
                        let image = Image::load(&path).unwrap_or_else(|e| panic!("{line}: {e}"));
                        assert_eq!((image.width(), image.height()), (int(2), int(3)), "{line}");
                        assert_eq!(format!("{:016x}", fnv1a64(image.pixels())), f[4], "{line}");
                        let from_memory = Image::from_memory(&std::fs::read(&path).unwrap()).unwrap();
                        assert_eq!(from_memory.pixels(), image.pixels(), "{line}: from_memory differs");
                    }
                    "resize" => {
                        let mode = if f[4] == "pillow" { ResizeMode::Pillow } else { ResizeMode::Hf };
                        let image = Image::load(&path).unwrap().resize(int(2), int(3), mode).unwrap();
                        assert_eq!((image.width(), image.height()), (int(2), int(3)), "{line}");
                        assert_eq!(format!("{:016x}", fnv1a64(image.pixels())), f[5], "{line}");
                    }
                    "error" => {
                        let err = Image::load(&path).unwrap_err();
                        assert_eq!(err.status(), status_of(f[2]), "{line}: {err}");
                        assert!(!err.message().is_empty(), "{line}");
                    }
                    other => panic!("unknown line kind {other}"),
                }
            }
        }
        checked += 1;
    }
    println!("expected.txt: {checked} lines checked, {skipped} skipped (shared data absent)");
    assert!(checked >= 90, "only {checked} lines checked");
}

#[test]
fn from_rgb_copies_rows_and_strides() {
    // 3 x 2 image: pixel (x, y) = (10x, 10y, x + y); stored with a 2-byte row padding.
    let (w, h, stride) = (3usize, 2usize, 11usize);
    let mut padded = vec![0xEEu8; stride * h];
    let mut packed = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let px = [10 * x as u8, 10 * y as u8, (x + y) as u8];
            padded[y * stride + 3 * x..y * stride + 3 * x + 3].copy_from_slice(&px);
            packed.extend_from_slice(&px);
        }
    }
    let a = Image::from_rgb(&packed, 3, 2).unwrap();
    let b = Image::from_rgb_strided(&padded, 3, 2, stride).unwrap();
    assert_eq!(a.pixels(), &packed[..]);
    assert_eq!(b.pixels(), &packed[..]);
    // One byte short of the last row.
    assert_eq!(
        Image::from_rgb_strided(&padded[..stride + 8], 3, 2, stride).unwrap_err().status(),
        Status::InvalidArgument
    );
}

#[test]
fn images_are_shared_across_threads() {
    let image = Image::load(common::fixture("images/rgb8.png")).unwrap();
    let want = image.resize(7, 5, ResizeMode::Pillow).unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| assert_eq!(image.resize(7, 5, ResizeMode::Pillow).unwrap().pixels(), want.pixels()));
        }
    });
}
