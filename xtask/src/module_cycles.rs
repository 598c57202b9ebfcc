//! A check of the invariant "no module imports a module that imports it back" (ARCHITECTURE.md)
//! over the library crates' sources: a module's imports are the `crate::a[::b]` and `super::x`
//! paths outside comments, resolved to the longest module path that exists as a file. A module
//! and its own submodules may refer to each other (`super::`), as Rust modules do.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    /// Module path (`fused::kernel`) -> the modules of the same crate it refers to.
    fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
        let mut files = Vec::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if path.file_name().is_some_and(|name| name != "bin") {
                        stack.push(path);
                    }
                } else if path.extension().is_some_and(|ext| ext == "rs") {
                    files.push(path);
                }
            }
        }
        let module_of = |path: &Path| -> Vec<String> {
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|last| last == "mod" || last == "lib" || last == "main") {
                parts.pop();
            }
            parts
        };
        let exists = |parts: &[&str]| -> bool {
            let base: PathBuf = parts.iter().collect();
            src.join(base.with_extension("rs")).exists() || src.join(&base).join("mod.rs").exists()
        };
        let mut graph = BTreeMap::new();
        for file in files {
            let parts = module_of(&file);
            if parts.is_empty() {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let mut deps = BTreeSet::new();
            for line in text.lines().filter(|line| !line.trim_start().starts_with("//")) {
                for (prefix, base) in [("crate::", Vec::new()), ("super::", parts[..parts.len() - 1].to_vec())] {
                    for (idx, _) in line.match_indices(prefix) {
                        let before = line[..idx].chars().next_back();
                        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                            continue;
                        }
                        let rest: String = line[idx + prefix.len()..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                            .collect();
                        let segments: Vec<&str> = rest.split("::").filter(|s| !s.is_empty()).collect();
                        let mut target: Vec<&str> = base.iter().map(String::as_str).collect();
                        let mut best = None;
                        for segment in segments {
                            target.push(segment);
                            if exists(&target) {
                                best = Some(target.join("::"));
                            } else {
                                break;
                            }
                        }
                        if let Some(best) = best {
                            deps.insert(best);
                        }
                    }
                }
            }
            graph.insert(parts.join("::"), deps);
        }
        graph
    }

    #[test]
    fn no_module_imports_a_module_that_imports_it_back() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let nested = |a: &str, b: &str| a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"));
        let mut cycles = Vec::new();
        for krate in ["subspace", "bench-suite", "datasets", "reports"] {
            let graph = imports(&root.join(krate).join("src"));
            assert!(graph.len() > 2, "{krate}: no modules found");
            for (a, deps) in &graph {
                for b in deps {
                    if a < b && !nested(a, b) && graph.get(b).is_some_and(|back| back.contains(a)) {
                        cycles.push(format!("{krate}: {a} <-> {b}"));
                    }
                }
            }
        }
        assert!(cycles.is_empty(), "modules importing each other: {cycles:?}");
    }

    #[test]
    fn the_check_sees_a_cycle() {
        let dir = std::env::temp_dir().join(format!("module-cycles-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("src/lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
        std::fs::write(dir.join("src/a.rs"), "use crate::b::thing;\n// crate::c is a comment\n").unwrap();
        std::fs::write(dir.join("src/b.rs"), "pub fn thing() { crate::a::other() }\n").unwrap();
        let graph = imports(&dir.join("src"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(graph["a"].contains("b") && graph["b"].contains("a"), "{graph:?}");
        assert_eq!(graph["a"].len(), 1, "{graph:?}");
    }
}
