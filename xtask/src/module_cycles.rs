//! A check of the invariant "no module imports a module that imports it back" (ARCHITECTURE.md),
//! directly or through others, over the library crates' sources: a module's imports are the
//! `crate::a[::b]` and `super::x` paths outside comments, grouped ones (`crate::{a, b::c}`)
//! included, each resolved to the longest module path that exists as a file. A module and its
//! own submodules may refer to each other (`super::`), as Rust modules do.

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
            let code: String = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .map(|line| format!("{line}\n"))
                .collect();
            for (prefix, base) in [("crate::", Vec::new()), ("super::", parts[..parts.len() - 1].to_vec())] {
                for (idx, _) in code.match_indices(prefix) {
                    let before = code[..idx].chars().next_back();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                        continue;
                    }
                    for path in paths_after(&code[idx + prefix.len()..]) {
                        let mut target: Vec<&str> = base.iter().map(String::as_str).collect();
                        let mut best = None;
                        for segment in path.split("::").filter(|segment| !segment.is_empty()) {
                            target.push(segment);
                            if exists(&target) {
                                best = Some(target.join("::"));
                            } else {
                                break;
                            }
                        }
                        deps.extend(best);
                    }
                }
            }
            graph.insert(parts.join("::"), deps);
        }
        graph
    }

    /// The paths a `use` or expression continues with after `crate::`: `a::b` -> [`a::b`];
    /// `{a, b::{c, d}, e}` -> [`a`, `b`, `e`] (the first segment of each member is enough to find
    /// the module).
    fn paths_after(rest: &str) -> Vec<String> {
        let word = |text: &str| -> String {
            text.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect()
        };
        let Some(group) = rest.strip_prefix('{') else { return vec![word(rest)] };
        let mut paths = Vec::new();
        let (mut depth, mut start) = (0usize, 0usize);
        for (idx, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    paths.push(word(group[start..idx].trim_start()));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    paths.push(word(group[start..idx].trim_start()));
                    start = idx + 1;
                }
                _ => {}
            }
        }
        paths.into_iter().filter(|path| !path.is_empty() && path != "self").collect()
    }

    /// A cycle of modules (not counting a module and its own submodules), if there is one.
    fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        let nested = |a: &str, b: &str| a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"));
        fn visit<'a>(
            node: &'a str,
            graph: &'a BTreeMap<String, BTreeSet<String>>,
            nested: &dyn Fn(&str, &str) -> bool,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) -> Option<Vec<String>> {
            if let Some(start) = path.iter().position(|&on_path| on_path == node) {
                return Some(path[start..].iter().map(|name| name.to_string()).chain([node.to_owned()]).collect());
            }
            if !done.insert(node) {
                return None;
            }
            path.push(node);
            for next in graph.get(node).into_iter().flatten() {
                if next != node
                    && !nested(node, next)
                    && graph.contains_key(next)
                    && let Some(cycle) = visit(next, graph, nested, path, done)
                {
                    return Some(cycle);
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        graph.keys().find_map(|node| visit(node, graph, &nested, &mut Vec::new(), &mut done))
    }

    /// The `members` of the workspace's `Cargo.toml`, so a new crate is checked without being named.
    fn workspace_members(root: &Path) -> Vec<String> {
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let list = manifest
            .lines()
            .find_map(|line| line.trim().strip_prefix("members = ["))
            .expect("the workspace Cargo.toml lists its members on one line");
        list.trim_end_matches(']').split(',').map(|member| member.trim().trim_matches('"').to_owned()).collect()
    }

    #[test]
    fn no_module_imports_a_module_that_imports_it_back() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut cycles = Vec::new();
        let members = workspace_members(root);
        for expected in ["results", "d90", "subspace", "encoders", "trainer", "bench-suite", "datasets", "reports"] {
            assert!(members.iter().any(|member| member == expected), "{expected} is not a member: {members:?}");
        }
        for krate in &members {
            let graph = imports(&root.join(krate).join("src"));
            if let Some(cycle) = find_cycle(&graph) {
                cycles.push(format!("{krate}: {}", cycle.join(" -> ")));
            }
        }
        assert!(cycles.is_empty(), "modules importing each other: {cycles:?}");
    }

    #[test]
    fn the_check_sees_direct_grouped_and_longer_cycles() {
        let dir = std::env::temp_dir().join(format!("module-cycles-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src/d")).unwrap();
        let files = [
            ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub mod d;\n"),
            ("a.rs", "use crate::b::thing;\n// crate::c is a comment\n"),
            ("b.rs", "use crate::{\n    c::other,\n    d::{self, e::f},\n};\n"),
            ("c.rs", "pub fn other() { crate::a::x() }\n"),
            ("d/mod.rs", "pub mod e;\nuse self::e::f;\n"),
            ("d/e.rs", "use super::super::d;\n"),
        ];
        for (name, text) in files {
            std::fs::write(dir.join("src").join(name), text).unwrap();
        }
        let graph = imports(&dir.join("src"));
        let cycle = find_cycle(&graph);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(graph["a"], BTreeSet::from(["b".to_owned()]), "comments are not imports: {graph:?}");
        assert_eq!(graph["b"], BTreeSet::from(["c".to_owned(), "d".to_owned()]), "grouped imports: {graph:?}");
        // a -> b -> c -> a; d and d::e refer to each other as parent and child, which is allowed.
        assert_eq!(cycle, Some(vec!["a".to_owned(), "b".to_owned(), "c".to_owned(), "a".to_owned()]));
    }

    #[test]
    fn grouped_paths_are_split_at_the_top_level() {
        assert_eq!(paths_after("a::b::C;"), vec!["a::b::C"]);
        assert_eq!(paths_after("{a, b::{c, d}, self, e::f}"), vec!["a", "b::", "e::f"]);
    }
}
