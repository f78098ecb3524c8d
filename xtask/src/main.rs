//! `cargo xtask`: the operator's commands and the project's own tasks.
fn main() {}
