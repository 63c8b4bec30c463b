//! No two modules of a workspace crate import each other, directly or through others
//! (see [`testkit::module_cycles`] for what counts as an import).

use std::path::Path;

use testkit::module_cycles::{cycles, module_graph, read_crate};

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut srcs = vec![root.join("src"), root.join("xtask/src")];
    for entry in std::fs::read_dir(root.join("crates")).expect("crates/") {
        srcs.push(entry.expect("entry").path().join("src"));
    }
    let mut checked = 0;
    let mut found = Vec::new();
    for src in srcs.iter().filter(|s| s.is_dir()) {
        let sources = read_crate(src).expect("readable sources");
        let graph = module_graph(&sources);
        checked += graph.modules.len();
        found.extend(
            cycles(&graph)
                .into_iter()
                .map(|c| format!("{}: {c}", src.display())),
        );
    }
    // The crates are there (a wrong root would check nothing).
    assert!(
        checked > 50,
        "only {checked} modules found under {}",
        root.display()
    );
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}
