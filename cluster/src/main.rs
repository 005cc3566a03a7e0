//! The `ninety` operator binary.

fn main() -> anyhow::Result<()> {
    println!("ninety: see README.md");
    Ok(())
}
