//! The embedded folders (`include_dir!` in src/assets.rs and src/help.rs) are read when the
//! crate compiles, and rustc only notices changes to files that already existed: rebuild when
//! a file is added to or removed from them too.

fn main() {
    for dir in ["docs", "playbooks", "templates"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
