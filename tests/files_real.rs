//! `files::resolve` over the real file system (`rt::tokio::TokioFs`): the same rules as the
//! unit tests over the in-memory one, checked against real symlinks and folders.

use std::path::{Path, PathBuf};

use exaid::error::ErrorCode;
use exaid::files::{Limits, SkipReason, resolve};
use exaid::rt::tokio::TokioFs;

fn limits(root: &Path) -> Limits {
    Limits {
        roots: vec![root.to_path_buf()],
        file_bytes_max: 64,
        files_max: 16,
        budget_bytes: 1 << 20,
        depth_max: Limits::DEPTH_MAX,
        entries_max: Limits::ENTRIES_MAX,
        images_max: 4,
        image_bytes_max: 1024,
    }
}

#[tokio::test]
async fn real_folders_expand_and_real_links_stay_inside_the_roots() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "secret\n").unwrap();
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("p");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::create_dir_all(project.join(".git")).unwrap();
    std::fs::write(project.join(".git/HEAD"), "ref\n").unwrap();
    std::fs::write(project.join("src/b.rs"), "b\n").unwrap();
    std::fs::write(project.join("src/a.rs"), "a\n").unwrap();
    std::fs::write(project.join("big.txt"), vec![b'x'; 100]).unwrap();
    std::fs::write(project.join("bin.dat"), b"\0\x01").unwrap();
    std::os::unix::fs::symlink(&secret, project.join("escape")).unwrap();
    let limits = limits(root.path());
    let fs = TokioFs;

    let named = [project.display().to_string()];
    let found = resolve(&fs, "files", &named, &limits).await.unwrap();
    let embedded: Vec<PathBuf> = found.embedded.iter().map(|e| e.path.clone()).collect();
    assert_eq!(
        embedded,
        [project.join("src/a.rs"), project.join("src/b.rs")]
    );
    let skipped: Vec<(PathBuf, SkipReason)> = found
        .skipped
        .iter()
        .map(|s| (s.path.clone(), s.reason.clone()))
        .collect();
    assert_eq!(
        skipped,
        [
            (
                project.join("big.txt"),
                SkipReason::TooLarge {
                    bytes: 100,
                    bytes_max: 64
                }
            ),
            (project.join("bin.dat"), SkipReason::Binary),
            (project.join("escape"), SkipReason::OutsideRoots),
        ]
    );

    let escape = [project.join("escape").display().to_string()];
    let err = resolve(&fs, "relevant_files", &escape, &limits)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ValidationError);
    assert_eq!(err.details.unwrap()["field"], "relevant_files[0]");
    assert!(
        err.message.contains("outside the allowed roots"),
        "{}",
        err.message
    );

    let dotdot = [format!("{}/../{}", root.path().display(), "x")];
    let err = resolve(&fs, "files", &dotdot, &limits).await.unwrap_err();
    assert!(err.message.contains("outside"), "{}", err.message);
}
