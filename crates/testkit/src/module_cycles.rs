//! Import cycles between the modules of a library crate, found from its sources.
//!
//! Within every module, its child modules must form a DAG: if `crate::a::x` refers to
//! `crate::b::y` and anything under `b` refers back to anything under `a`, the siblings `a`
//! and `b` import each other (directly or through others) and the check fails. A reference
//! between a module and one of its own ancestors (a child using `super::Error`, a parent
//! re-exporting its child) is the normal layering of a module folder and is not an edge.
//!
//! References are the paths `crate::…`, `super::…` and `self::…` anywhere in the code (in
//! `use` items, brace groups expanded, and inline), comments excluded; each resolves to the
//! deepest module it names. Test code (`#[cfg(test)]` items and the module files they
//! declare) is left out: it is compiled only into the crate's own test binary, and a unit
//! test of `a` may well use a sibling that uses `a`. Names reached through a re-export at the crate root
//! (`crate::Thing`) resolve to the root and add no edge, so a cycle hidden behind such a
//! re-export is not seen; the crates here import by module path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path below the crate root (`["train", "backbone"]`; empty for the root).
pub type ModPath = Vec<String>;

/// The modules of a crate and the sibling edges between them.
#[derive(Debug, Default)]
pub struct ModuleGraph {
    /// Every module found, with the file it lives in (a `mod.rs` or `name.rs`).
    pub modules: BTreeMap<ModPath, PathBuf>,
    /// `parent -> (child a -> children b that a's subtree refers to)`.
    pub edges: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>>,
}

/// Reads every `.rs` file under `src` (a crate's `src` folder, `lib.rs` its root).
///
/// # Errors
/// An unreadable folder or file.
pub fn read_crate(src: &Path) -> std::io::Result<Vec<(ModPath, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap_or(&path);
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            let file = parts.pop().unwrap_or_default();
            match file.as_str() {
                "lib.rs" | "main.rs" if parts.is_empty() => {}
                "mod.rs" => {}
                _ => parts.push(file.trim_end_matches(".rs").to_string()),
            }
            if parts.first().is_some_and(|p| p == "bin") {
                continue; // binaries are crates of their own
            }
            out.push((parts, std::fs::read_to_string(&path)?));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes `//` comments (doc comments included), keeping string literals intact.
fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let mut in_str = false;
        let mut prev = '\0';
        let mut cut = line.len();
        for (i, c) in line.char_indices() {
            match c {
                '"' if prev != '\\' => in_str = !in_str,
                '/' if !in_str && prev == '/' => {
                    cut = i - 1;
                    break;
                }
                _ => {}
            }
            prev = if prev == '\\' && c == '\\' { '\0' } else { c };
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

/// Removes `#[cfg(test)]` items from comment-free code: a braced item up to its closing
/// brace, or an item ending in `;`. Returns the code and the modules declared test-only
/// there (`#[cfg(test)] mod name;`).
fn strip_test_code(code: &str) -> (String, Vec<String>) {
    const ATTR: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut test_mods = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(ATTR) {
        out.push_str(&rest[..at]);
        let item = &rest[at + ATTR.len()..];
        let bytes = item.as_bytes();
        let (mut depth, mut in_str, mut i) = (0usize, false, 0usize);
        let mut end = item.len();
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_str => i += 1,
                b'"' => in_str = !in_str,
                b'{' if !in_str => depth += 1,
                b'}' if !in_str => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                b';' if !in_str && depth == 0 => {
                    let decl = item[..i].split_whitespace().collect::<Vec<_>>();
                    if let [.., "mod", name] = decl.as_slice() {
                        test_mods.push(name.to_string());
                    }
                    end = i + 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    (out, test_mods)
}

/// Expands `use` trees: `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = tree[open + 1..]
        .strip_suffix('}')
        .unwrap_or(&tree[open + 1..]);
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(&format!("{prefix}{p}")))
        .collect()
}

/// Every `crate::…`, `super::…` or `self::…` path in a module's code.
fn referenced_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` items, with brace groups (they may span lines).
    let mut rest = code;
    while let Some(at) = find_word(rest, "use") {
        let after = &rest[at + 3..];
        let Some(end) = after.find(';') else { break };
        let tree = after[..end].trim();
        if tree.starts_with("crate::") || tree.starts_with("super::") || tree.starts_with("self::")
        {
            out.extend(expand(tree));
        }
        rest = &after[end..];
    }
    // Inline paths (`crate::eval::run(..)`); a use item's own prefix is found again here,
    // which only repeats an edge.
    for root in ["crate", "super", "self"] {
        let mut rest = code;
        while let Some(at) = find_word(rest, root) {
            let tail = &rest[at..];
            let len = tail
                .char_indices()
                .find(|&(i, c)| !(c.is_alphanumeric() || c == '_' || (c == ':' && i > 0)))
                .map_or(tail.len(), |(i, _)| i);
            let path = tail[..len].trim_end_matches(':');
            if path.contains("::") {
                out.push(path.to_string());
            }
            rest = &tail[len.max(1)..];
        }
    }
    out
}

/// The byte offset of `word` as a whole identifier in `s`.
fn find_word(s: &str, word: &str) -> Option<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(i) = s[from..].find(word).map(|i| i + from) {
        let before = s[..i].chars().next_back();
        let after = s[i + word.len()..].chars().next();
        if !before.is_some_and(ident) && !after.is_some_and(ident) {
            return Some(i);
        }
        from = i + word.len();
    }
    None
}

/// Resolves `path` used in module `here` to the deepest known module it names.
fn resolve(here: &ModPath, path: &str, modules: &BTreeMap<ModPath, PathBuf>) -> Option<ModPath> {
    let mut segs = path.split("::").filter(|s| !s.is_empty());
    let mut base: ModPath = match segs.next()? {
        "crate" => Vec::new(),
        "self" => here.clone(),
        "super" => here[..here.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    let segs: Vec<&str> = segs.collect();
    let mut i = 0;
    while i < segs.len() && segs[i] == "super" {
        base.pop()?;
        i += 1;
    }
    for seg in &segs[i..] {
        let mut next = base.clone();
        next.push(seg.to_string());
        if !modules.contains_key(&next) {
            break;
        }
        base = next;
    }
    Some(base)
}

/// Builds the sibling-edge graph of a crate's sources (`(module path, source)` pairs).
pub fn module_graph(sources: &[(ModPath, String)]) -> ModuleGraph {
    let mut g = ModuleGraph::default();
    let mut code = Vec::new();
    let mut test_only: Vec<ModPath> = Vec::new();
    for (m, src) in sources {
        let (c, tests) = strip_test_code(&strip_comments(src));
        test_only.extend(tests.into_iter().map(|t| {
            let mut p = m.clone();
            p.push(t);
            p
        }));
        code.push((m, c));
    }
    code.retain(|(m, _)| !test_only.iter().any(|t| m.starts_with(t)));
    for (m, _) in &code {
        g.modules.insert(m.to_vec(), PathBuf::from(m.join("/")));
    }
    for (from, src) in code {
        for path in referenced_paths(&src) {
            let Some(to) = resolve(from, &path, &g.modules) else {
                continue;
            };
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            // One is an ancestor of the other (or they are the same module): no edge.
            if common == from.len() || common == to.len() {
                continue;
            }
            g.edges
                .entry(from[..common].to_vec())
                .or_default()
                .entry(from[common].clone())
                .or_default()
                .insert(to[common].clone());
        }
    }
    g
}

/// Every cycle among siblings, as `parent: a -> b -> a` (empty when the layering is a DAG).
pub fn cycles(g: &ModuleGraph) -> Vec<String> {
    let mut found = Vec::new();
    for (parent, adj) in &g.edges {
        // Depth-first search with colours; each back edge closes one cycle.
        let mut colour: BTreeMap<&str, u8> = BTreeMap::new();
        for start in adj.keys() {
            let mut stack: Vec<&str> = Vec::new();
            visit(start, adj, &mut colour, &mut stack, &mut |cycle| {
                let name = if parent.is_empty() {
                    "crate".to_string()
                } else {
                    format!("crate::{}", parent.join("::"))
                };
                found.push(format!("{name}: {}", cycle.join(" -> ")));
            });
        }
    }
    found
}

fn visit<'a>(
    node: &'a str,
    adj: &'a BTreeMap<String, BTreeSet<String>>,
    colour: &mut BTreeMap<&'a str, u8>,
    stack: &mut Vec<&'a str>,
    report: &mut impl FnMut(Vec<&str>),
) {
    match colour.get(node) {
        Some(2) => return,
        Some(1) => {
            let at = stack.iter().position(|n| *n == node).unwrap_or(0);
            let mut cycle = stack[at..].to_vec();
            cycle.push(node);
            report(cycle);
            return;
        }
        _ => {}
    }
    colour.insert(node, 1);
    stack.push(node);
    for next in adj.get(node).into_iter().flatten() {
        visit(next, adj, colour, stack, report);
    }
    stack.pop();
    colour.insert(node, 2);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &str, src: &str) -> (ModPath, String) {
        let p = if path.is_empty() {
            Vec::new()
        } else {
            path.split("::").map(String::from).collect()
        };
        (p, src.to_string())
    }

    #[test]
    fn two_siblings_importing_each_other_are_a_cycle() {
        let g = module_graph(&[
            m("", "pub mod eval; pub mod train;"),
            m("eval", "use crate::train::Backbone;"),
            m("train", "fn f() { crate::eval::run(); }"),
        ]);
        assert_eq!(cycles(&g), ["crate: eval -> train -> eval"]);
    }

    #[test]
    fn a_cycle_through_a_third_module_and_nested_braces_is_found() {
        let g = module_graph(&[
            m("", ""),
            m("a", "use crate::{b::{X, Y}, c};"),
            m("b", "use super::c::Z;"),
            m("c", "use crate::a::inner::W;"),
            m("a::inner", ""),
        ]);
        assert_eq!(cycles(&g), ["crate: a -> b -> c -> a"]);
    }

    #[test]
    fn test_code_is_left_out() {
        let g = module_graph(&[
            m("", "mod a; mod b; #[cfg(test)]\nmod testing;"),
            m("a", "use crate::b::B;"),
            m(
                "b",
                "pub struct B;\n#[cfg(test)]\nmod tests { use crate::a::f; fn g() { let s = \"}\"; } }",
            ),
            m("testing", "use crate::a::f; use crate::b::B;"),
        ]);
        assert!(cycles(&g).is_empty(), "{:?}", cycles(&g));
        assert!(!g.modules.contains_key(&vec!["testing".to_string()]));
        // The same code as library code is a cycle.
        let g = module_graph(&[
            m("", ""),
            m("a", "use crate::b::B;"),
            m("b", "pub struct B;\nmod tests { use crate::a::f; }"),
        ]);
        assert_eq!(cycles(&g), ["crate: a -> b -> a"]);
    }

    #[test]
    fn children_using_their_parent_and_comments_are_not_edges() {
        let g = module_graph(&[
            m("", "pub use p::Thing; // crate::q::x"),
            m("p", "mod x; mod y; pub use x::Thing; pub enum E {}"),
            m(
                "p::x",
                "use super::E; use super::y::Y;\n/// [`crate::q`]\nfn f() {}",
            ),
            m("p::y", "use crate::p::E;"),
            m("q", "use crate::p::x::Thing;"),
        ]);
        assert!(cycles(&g).is_empty(), "{:?}", cycles(&g));
        assert_eq!(
            g.edges[&vec!["p".to_string()]]["x"],
            ["y".to_string()].into()
        );
    }
}
