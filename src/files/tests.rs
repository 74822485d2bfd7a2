//! The rules of `files::resolve`, one test each, over the in-memory file system.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use futures_util::FutureExt;

use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::image::{Image, read_images};
use crate::error::ErrorCode;
use crate::rt::memory::MemoryFs;
use crate::rt::{BoxFuture, FileMeta, FileRead};

/// Generous bounds under the root `/home/u`.
fn limits() -> Limits {
    Limits {
        roots: vec![PathBuf::from("/home/u")],
        file_bytes_max: 1024,
        files_max: 16,
        budget_bytes: 1 << 20,
        depth_max: Limits::DEPTH_MAX,
        entries_max: Limits::ENTRIES_MAX,
        images_max: 2,
        image_bytes_max: 64,
    }
}

/// A home with a project and a file outside the roots.
fn tree() -> MemoryFs {
    let fs = MemoryFs::new();
    fs.write("/home/u/p/src/main.rs", "fn main() {}\n");
    fs.write("/home/u/p/src/lib.rs", "pub mod a;\n");
    fs.write("/home/u/p/README.md", "# p\n");
    fs.write("/etc/passwd", "root:x:0:0\n");
    fs
}

/// Run a resolution to its end (the in-memory file system never waits).
fn run(fs: &dyn FileSystem, paths: &[&str], limits: &Limits) -> Result<Found, CallError> {
    let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
    resolve(fs, "files", &paths, limits)
        .now_or_never()
        .expect("never waits")
}

/// The refusal's field and message.
fn refusal(fs: &dyn FileSystem, paths: &[&str]) -> (String, String) {
    let err = run(fs, paths, &limits()).expect_err("refused");
    assert_eq!(err.code, ErrorCode::ValidationError);
    let field = err.details.as_ref().unwrap()["field"].as_str().unwrap();
    (field.to_string(), err.message)
}

fn embedded_paths(found: &Found) -> Vec<&Path> {
    found.embedded.iter().map(|e| e.path.as_path()).collect()
}

#[test]
fn a_named_file_is_embedded_whole() {
    let found = run(&tree(), &["/home/u/p/src/main.rs"], &limits()).unwrap();
    assert_eq!(found.embedded.len(), 1);
    assert_eq!(found.embedded[0].content, "fn main() {}\n");
    assert_eq!(found.embedded[0].bytes, 13);
    assert!(found.skipped.is_empty());
}

#[test]
fn a_relative_path_is_refused_naming_the_entry() {
    let (field, message) = refusal(&tree(), &["/home/u/p/README.md", "src/main.rs"]);
    assert_eq!(field, "files[1]");
    assert_eq!(message, "files[1]: \"src/main.rs\" is not an absolute path");
}

#[test]
fn the_field_name_is_the_callers() {
    let paths = vec!["p".to_string()];
    let err = resolve(&tree(), "relevant_files", &paths, &limits())
        .now_or_never()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.details.unwrap()["field"], "relevant_files[0]");
}

#[test]
fn paths_outside_the_roots_are_refused() {
    let (field, message) = refusal(&tree(), &["/etc/passwd"]);
    assert_eq!(field, "files[0]");
    assert!(
        message.contains("outside the allowed roots (EXAI_FILE_ROOTS)"),
        "{message}"
    );
    let (_, message) = refusal(&tree(), &["/home/u/../../etc/passwd"]);
    assert!(message.contains("\"/etc/passwd\" is outside"), "{message}");
    let (_, message) = refusal(&tree(), &["/home/user2/x"]);
    assert!(
        message.contains("outside"),
        "a sibling with the root as prefix: {message}"
    );
}

#[test]
fn a_symlink_escaping_the_roots_is_refused() {
    let fs = tree();
    fs.symlink("/home/u/p/escape", "/etc/passwd");
    let (_, message) = refusal(&fs, &["/home/u/p/escape"]);
    assert!(
        message.contains("\"/home/u/p/escape\" is outside"),
        "{message}"
    );
}

#[test]
fn a_symlink_inside_the_roots_is_followed_and_shown_as_named() {
    let fs = tree();
    fs.symlink("/home/u/main", "p/src/main.rs");
    let found = run(&fs, &["/home/u/./p/../main"], &limits()).unwrap();
    assert_eq!(embedded_paths(&found), [Path::new("/home/u/main")]);
}

#[test]
fn a_root_reached_through_a_link_admits_its_resolved_paths() {
    let fs = tree();
    fs.write("/data/u/notes.txt", "n\n");
    fs.remove("/home/u");
    fs.symlink("/home/u", "/data/u");
    let both = ["/home/u/notes.txt", "/data/u/notes.txt"];
    let found = run(&fs, &both, &limits()).unwrap();
    assert_eq!(found.embedded.len(), 1);
    assert_eq!(found.skipped[0].reason, SkipReason::Duplicate);
}

#[test]
fn missing_and_unreadable_files_are_refused_saying_why() {
    let fs = tree();
    let (_, message) = refusal(&fs, &["/home/u/nope.rs"]);
    assert_eq!(message, "files[0]: \"/home/u/nope.rs\" does not exist");
    fs.lock("/home/u/secret");
    let (_, message) = refusal(&fs, &["/home/u/secret"]);
    assert!(
        message.starts_with("files[0]: \"/home/u/secret\" cannot be read: "),
        "{message}"
    );
}

#[test]
fn a_folder_expands_to_its_text_files_in_sorted_order() {
    let fs = tree();
    fs.write("/home/u/p/.env", "SECRET=1");
    fs.write("/home/u/p/.git/config", "x");
    fs.write("/home/u/p/node_modules/m/index.js", "x");
    fs.write("/home/u/p/target/debug/out", "x");
    fs.write("/home/u/p/src/__pycache__/a.pyc", "x");
    fs.write("/home/u/p/logo.png", b"\x89PNG\0\0".to_vec());
    fs.write("/home/u/p/build", "a file named like a build folder\n");
    let found = run(&fs, &["/home/u/p"], &limits()).unwrap();
    let want = [
        "/home/u/p/README.md",
        "/home/u/p/build",
        "/home/u/p/src/lib.rs",
        "/home/u/p/src/main.rs",
    ];
    assert_eq!(embedded_paths(&found), want.map(Path::new));
    assert_eq!(found.skipped.len(), 1);
    assert_eq!(found.skipped[0].path, Path::new("/home/u/p/logo.png"));
    assert_eq!(found.skipped[0].reason, SkipReason::Binary);
}

#[test]
fn a_link_in_a_folder_leading_outside_is_skipped_not_read() {
    let fs = tree();
    fs.symlink("/home/u/p/etc", "/etc");
    let found = run(&fs, &["/home/u/p"], &limits()).unwrap();
    assert!(found.embedded.iter().all(|e| !e.content.contains("root")));
    let skipped = &found.skipped[0];
    assert_eq!(skipped.path, Path::new("/home/u/p/etc"));
    assert_eq!(skipped.reason, SkipReason::OutsideRoots);
}

#[test]
fn a_link_loop_in_a_folder_ends() {
    let fs = tree();
    fs.symlink("/home/u/p/src/again", "/home/u/p");
    let found = run(&fs, &["/home/u/p"], &limits()).unwrap();
    assert_eq!(found.embedded.len(), 3);
}

#[test]
fn an_oversized_file_is_skipped_and_named_not_cut() {
    let fs = tree();
    fs.write("/home/u/big.log", vec![b'a'; 2000]);
    let found = run(&fs, &["/home/u/big.log", "/home/u/p/README.md"], &limits()).unwrap();
    assert_eq!(embedded_paths(&found), [Path::new("/home/u/p/README.md")]);
    let reason = &found.skipped[0].reason;
    assert_eq!(
        *reason,
        SkipReason::TooLarge {
            bytes: 2000,
            bytes_max: 1024
        }
    );
    assert!(reason.to_string().contains("EXAI_FILE_BYTES_MAX"));
}

#[test]
fn files_past_the_per_call_limit_are_skipped_and_named() {
    let limits = Limits {
        files_max: 2,
        ..limits()
    };
    let found = run(&tree(), &["/home/u/p"], &limits).unwrap();
    assert_eq!(found.embedded.len(), 2);
    assert_eq!(found.skipped.len(), 1);
    assert_eq!(
        found.skipped[0].reason,
        SkipReason::FilesMax { files_max: 2 }
    );
    let named = [
        "/home/u/p/README.md",
        "/home/u/p/src/lib.rs",
        "/home/u/p/src/main.rs",
    ];
    let found = run(&tree(), &named, &limits).unwrap();
    assert_eq!(found.skipped[0].path, Path::new(named[2]));
}

#[test]
fn the_budget_skips_what_does_not_fit() {
    let limits = Limits {
        budget_bytes: 20,
        ..limits()
    };
    let named = [
        "/home/u/p/src/main.rs",
        "/home/u/p/src/lib.rs",
        "/home/u/p/README.md",
    ];
    let found = run(&tree(), &named, &limits).unwrap();
    assert_eq!(found.embedded_bytes(), 13 + 4);
    assert_eq!(found.skipped[0].path, Path::new(named[1]));
    assert_eq!(
        found.skipped[0].reason,
        SkipReason::Budget { budget_bytes: 20 }
    );
}

#[test]
fn expansion_is_bounded_in_depth_and_entries() {
    let fs = tree();
    fs.write("/home/u/d/a/b/c/deep.txt", "x");
    fs.write("/home/u/d/top.txt", "x");
    let shallow = Limits {
        depth_max: 1,
        ..limits()
    };
    let found = run(&fs, &["/home/u/d"], &shallow).unwrap();
    assert_eq!(embedded_paths(&found), [Path::new("/home/u/d/top.txt")]);
    assert_eq!(found.skipped[0].path, Path::new("/home/u/d/a/b"));
    assert_eq!(
        found.skipped[0].reason,
        SkipReason::TooDeep { depth_max: 1 }
    );
    let few = Limits {
        entries_max: 2,
        ..limits()
    };
    let found = run(&fs, &["/home/u/p"], &few).unwrap();
    assert_eq!(
        found.skipped.last().unwrap().path,
        Path::new("/home/u/p/src")
    );
    assert_eq!(
        found.skipped.last().unwrap().reason,
        SkipReason::EntriesMax { entries_max: 2 }
    );
}

#[test]
fn non_utf8_text_is_skipped_not_mangled() {
    let fs = tree();
    fs.write("/home/u/latin1.txt", b"caf\xe9".to_vec());
    let found = run(&fs, &["/home/u/latin1.txt"], &limits()).unwrap();
    assert_eq!(found.skipped[0].reason, SkipReason::NotUtf8);
}

/// What happens to a file between the look and the read.
#[derive(Clone, Copy)]
enum Mischief {
    /// It grows by a byte.
    Grows,
    /// It is removed.
    Vanishes,
}

/// A file system that changes every file just before it is read.
struct Meddling {
    /// The files.
    inner: MemoryFs,
    /// What it does to them.
    mischief: Mischief,
}

impl FileSystem for Meddling {
    fn canonicalize<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<PathBuf>> {
        self.inner.canonicalize(path)
    }
    fn metadata<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<FileMeta>> {
        self.inner.metadata(path)
    }
    fn read_dir<'a>(&'a self, path: &'a Path) -> BoxFuture<'a, io::Result<Vec<OsString>>> {
        self.inner.read_dir(path)
    }
    fn read<'a>(&'a self, path: &'a Path, bytes_max: u64) -> BoxFuture<'a, io::Result<FileRead>> {
        match self.mischief {
            Mischief::Grows => self.inner.write(path, "fn main() {}\n//"),
            Mischief::Vanishes => self.inner.remove(path),
        }
        self.inner.read(path, bytes_max)
    }
}

#[test]
fn a_file_that_changes_or_vanishes_while_read_is_an_error_naming_it() {
    for (mischief, why) in [
        (Mischief::Grows, "changed while it was read"),
        (Mischief::Vanishes, "disappeared while it was read"),
    ] {
        let fs = Meddling {
            inner: tree(),
            mischief,
        };
        let (field, message) = refusal(&fs, &["/home/u/p/src"]);
        assert_eq!(field, "files[0]");
        assert_eq!(message, format!("files[0]: \"/home/u/p/src/lib.rs\" {why}"));
    }
}

#[test]
fn no_roots_refuse_everything() {
    let none = Limits {
        roots: Vec::new(),
        ..limits()
    };
    let err = run(&tree(), &["/home/u/p/README.md"], &none).unwrap_err();
    assert!(err.message.contains("outside"));
}

/// The first bytes of a PNG file, then filler: what sniffing recognises.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n0000IHDR";

fn images(fs: &dyn FileSystem, entries: &[&str]) -> Result<Vec<Image>, CallError> {
    let entries: Vec<String> = entries.iter().map(|p| p.to_string()).collect();
    read_images(fs, "images", &entries, &limits())
        .now_or_never()
        .expect("never waits")
}

fn image_refusal(fs: &dyn FileSystem, entries: &[&str]) -> (String, String) {
    let err = images(fs, entries).expect_err("refused");
    assert_eq!(err.code, ErrorCode::ValidationError);
    let field = err.details.as_ref().unwrap()["field"].as_str().unwrap();
    (field.to_string(), err.message)
}

#[test]
fn an_image_file_or_data_url_becomes_a_data_url_of_its_sniffed_type() {
    let fs = tree();
    fs.write("/home/u/p/shot.png", PNG);
    let inline = format!("data:image/PNG;base64,{}", BASE64.encode(PNG));
    let found = images(&fs, &["/home/u/p/shot.png", &inline]).unwrap();
    assert_eq!(found.len(), 2);
    let expected_url = format!("data:image/png;base64,{}", BASE64.encode(PNG));
    for image in &found {
        assert_eq!(image.media_type, "image/png");
        assert_eq!(image.bytes, PNG.len() as u64);
        assert_eq!(image.url, expected_url);
    }
    assert_eq!(found[0].source, "/home/u/p/shot.png");
    assert_eq!(
        found[1].source, "data:image/png",
        "the payload is never echoed"
    );
}

#[test]
fn images_that_break_a_rule_are_refused_naming_the_entry() {
    let fs = tree();
    fs.write("/home/u/p/shot.png", PNG);
    fs.write("/home/u/p/big.png", [PNG, &[0u8; 64]].concat());
    fs.write("/outside/shot.png", PNG);
    let text_as_png = format!("data:image/png;base64,{}", BASE64.encode("not an image"));
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["p/shot.png"],
            "images[0]",
            "is neither an absolute path nor a data: URL",
        ),
        (
            &["/outside/shot.png"],
            "images[0]",
            "is outside the allowed roots",
        ),
        (&["/home/u/p/none.png"], "images[0]", "does not exist"),
        (
            &["/home/u/p/src/main.rs"],
            "images[0]",
            "is not a PNG, JPEG, GIF or WebP image",
        ),
        (
            &["/home/u/p/shot.png", "/home/u/p/big.png"],
            "images[1]",
            "over the 64 bytes",
        ),
        (&["/home/u/p"], "images[0]", "is a folder"),
        (&["data:image/png,abc"], "images[0]", "is not base64"),
        (
            &["data:text/plain;base64,aGk="],
            "images[0]",
            "images must be PNG, JPEG, GIF or WebP",
        ),
        (
            &["data:image/png;base64,%%%"],
            "images[0]",
            "does not hold valid base64",
        ),
        (
            &[&text_as_png],
            "images[0]",
            "declares image/png but does not hold one",
        ),
        (
            &["/home/u/p/shot.png"; 3],
            "images",
            "at most 2 may be sent",
        ),
    ];
    for (entries, field, why) in cases {
        let (got_field, message) = image_refusal(&fs, entries);
        assert_eq!(got_field, *field, "{entries:?}: {message}");
        assert!(message.contains(why), "{entries:?}: {message}");
        assert!(message.starts_with(field), "{message}");
    }
}

#[test]
fn an_image_that_changes_while_read_is_an_error_naming_it() {
    let fs = Meddling {
        inner: tree(),
        mischief: Mischief::Grows,
    };
    fs.inner.write("/home/u/p/src/main.rs", PNG);
    let (field, message) = image_refusal(&fs, &["/home/u/p/src/main.rs"]);
    assert_eq!(field, "images[0]");
    assert!(message.ends_with("changed while it was read"), "{message}");
}
