//! Every DMLLM_API function of include/densemllm.h is declared in src/lib.rs (the header is the
//! source of truth; a function added there must be added here too).
use std::collections::BTreeSet;

/// Names of the functions declared after DMLLM_API, comments and preprocessor lines removed.
fn header_functions(header: &str) -> BTreeSet<String> {
    let mut text = String::new();
    let mut rest = header;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        rest = rest[start..].find("*/").map_or("", |end| &rest[start + end + 2..]);
    }
    text.push_str(rest);
    let code: String = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    code.split("DMLLM_API")
        .skip(1)
        .filter_map(|decl| {
            let before_paren = &decl[..decl.find('(')?];
            before_paren.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).rfind(|w| !w.is_empty())
        })
        .map(str::to_owned)
        .collect()
}

fn rust_functions(source: &str) -> BTreeSet<String> {
    source
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("pub fn ").or_else(|| l.trim_start().strip_prefix("pub safe fn ")))
        .map(|l| l[..l.find('(').unwrap()].to_owned())
        .collect()
}

#[test]
fn every_header_function_is_declared() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let header = std::fs::read_to_string(format!("{dir}/../../../include/densemllm.h")).unwrap();
    let source = std::fs::read_to_string(format!("{dir}/src/lib.rs")).unwrap();
    let (c, rust) = (header_functions(&header), rust_functions(&source));
    assert!(c.len() >= 90, "parsed only {} header functions", c.len());
    let missing: Vec<_> = c.difference(&rust).collect();
    let extra: Vec<_> = rust.difference(&c).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing in Rust: {missing:?}; not in the header: {extra:?}");
}
