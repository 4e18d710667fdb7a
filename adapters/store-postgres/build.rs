//! `sqlx::migrate!` embeds `migrations/postgres` at compile time but does not tell cargo to watch the
//! folder, so a migration added or changed would not rebuild this crate: it is said here.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
