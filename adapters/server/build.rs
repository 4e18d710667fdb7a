//! Puts the commit the binary is built from into `--version` (`AGENT_REGISTRY_COMMIT`): the
//! variable itself when CI or a Docker build sets it, else `git rev-parse --short HEAD`, else
//! `unknown` (a source tarball, or a build context without `.git`).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=AGENT_REGISTRY_COMMIT");
    let commit = std::env::var("AGENT_REGISTRY_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it points at (a commit).
    // A missing file would rerun this script on every build, so only existing ones are named.
    let references = std::iter::once("HEAD".to_owned()).chain(git(&["symbolic-ref", "-q", "HEAD"]));
    for reference in references {
        if let Some(path) = git(&["rev-parse", "--git-path", &reference])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rustc-env=AGENT_REGISTRY_COMMIT={commit}");
}
