//! Tidy checks of the documentation, over every workspace member's sources: each library crate
//! turns on rustc's `missing_docs` lint at its root (so `cargo xtask test`'s clippy with
//! `-D warnings` refuses an undocumented public item), and no comment line is longer than 120
//! columns (rustfmt wraps code, not comments: a longer line is a clause pasted into a paragraph).

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    const MAX_COMMENT_COLUMNS: usize = 120;

    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
    }

    /// The `members` of the workspace's `Cargo.toml`.
    fn members() -> Vec<String> {
        let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
        let list = manifest
            .lines()
            .find_map(|line| line.trim().strip_prefix("members = ["))
            .expect("the workspace Cargo.toml lists its members on one line");
        list.trim_end_matches(']').split(',').map(|member| member.trim().trim_matches('"').to_owned()).collect()
    }

    fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, files);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }

    #[test]
    fn every_library_crate_requires_docs_on_its_public_items() {
        let mut missing = Vec::new();
        for member in members() {
            let lib = root().join(&member).join("src/lib.rs");
            let Ok(text) = std::fs::read_to_string(&lib) else { continue };
            if !text.lines().any(|line| line.trim() == "#![warn(missing_docs)]") {
                missing.push(member);
            }
        }
        assert!(missing.is_empty(), "library crates without #![warn(missing_docs)] in src/lib.rs: {missing:?}");
    }

    #[test]
    fn no_comment_line_is_longer_than_the_comment_width() {
        let mut long = Vec::new();
        for member in members() {
            let mut files = Vec::new();
            for dir in ["src", "tests", "benches", "examples"] {
                rust_files(&root().join(&member).join(dir), &mut files);
            }
            if root().join(&member).join("build.rs").exists() {
                files.push(root().join(&member).join("build.rs"));
            }
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                for (index, line) in text.lines().enumerate() {
                    let is_comment = line.trim_start().starts_with("//");
                    if is_comment && line.chars().count() > MAX_COMMENT_COLUMNS {
                        let path = file.strip_prefix(root()).unwrap().display().to_string();
                        long.push(format!("{path}:{} ({} columns)", index + 1, line.chars().count()));
                    }
                }
            }
        }
        assert!(long.is_empty(), "comment lines over {MAX_COMMENT_COLUMNS} columns:\n{}", long.join("\n"));
    }
}
