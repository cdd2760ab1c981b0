//! The import graph of versus' top-level modules has no cycles: every
//! `crate::<module>` reference of a file under src/<module> (or src/<module>.rs)
//! to another top-level module is an edge, and the graph must be acyclic.
//! Also: crates/vmm, where every line that talks to KVM lives, uses nothing
//! of versus, and src/ opens no KVM ioctl of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of src/ belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// A file's code without comments (doc links are not imports) and without
/// its unit tests (a `#[cfg(test)] mod tests` may use anything).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The top-level modules a file's code refers to with `crate::<m>`.
fn references(text: &str) -> BTreeSet<String> {
    let code = code_of(text);
    let code = code.as_str();
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue; // `versus_vmm::crate::` never, but `$crate::` etc.
        }
        let rest = &code[i + 7..];
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(&src, f);
        if m == "main" || m == "commands" || m == "lib" {
            continue; // the binary's side, above everything
        }
        let text = std::fs::read_to_string(f).unwrap();
        let refs = references(&text);
        let e = graph.entry(m.clone()).or_default();
        for r in refs {
            if r != m {
                e.insert(r);
            }
        }
    }
    for (m, deps) in &graph {
        eprintln!("{m} -> {}", deps.iter().cloned().collect::<Vec<_>>().join(", "));
    }
    // Depth-first search for a cycle.
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, stack: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(c) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle between top-level modules: {}", c.join(" -> "));
        }
    }
    // The layers of docs/design.md: what drives platforms is above them,
    // the building blocks below.
    let deps = |m: &str| graph.get(m).cloned().unwrap_or_default();
    for low in ["measure", "model", "stats"] {
        assert!(
            !deps(low).contains("platform") && !deps(low).contains("experiment") && !deps(low).contains("runner"),
            "{low} must not use what is above it: {:?}",
            deps(low)
        );
    }
    assert!(!deps("platform").contains("experiment") && !deps("platform").contains("runner"), "platform uses an experiment: {:?}", deps("platform"));
}

#[test]
fn kvm_lives_in_crates_vmm_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    for f in files {
        let text = code_of(&std::fs::read_to_string(&f).unwrap());
        for needle in ["kvm_ioctls", "kvm_bindings", "vm_memory::", "linux_loader"] {
            assert!(!text.contains(needle), "{} uses {needle}: KVM code belongs in crates/vmm", f.display());
        }
    }
    let mut vmm = Vec::new();
    rust_files(&root.join("crates/vmm/src"), &mut vmm);
    for f in vmm {
        let text = code_of(&std::fs::read_to_string(&f).unwrap());
        assert!(!text.contains("versus::"), "{} uses versus: the VMM crate stands alone", f.display());
    }
}
