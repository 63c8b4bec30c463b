//! Writes the report of a results folder: `cargo run --release -p maple-report --example
//! report -- <results-dir> [out-dir]` (default out-dir: `<results-dir>/report`). A stand-in
//! for `maple report` until the CLI has it.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: report <results-dir> [out-dir]")?);
    let out = args.next().map_or_else(|| dir.join("report"), Into::into);
    let collection = maple_report::collect(&dir)?;
    for w in &collection.warnings {
        eprintln!("warning: {w}");
    }
    let written = maple_report::write_report(&collection, &out)?;
    for f in written.files() {
        println!("{}", f.display());
    }
    Ok(())
}
