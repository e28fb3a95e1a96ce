//! `cargo xtask`: the project's build pipeline (see `cargo xtask help`).

fn main() -> anyhow::Result<()> {
    println!("tasks: (none yet)");
    Ok(())
}
