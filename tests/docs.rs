//! The documentation as a reader follows it: every relative link of README.md and the pages it
//! links leads to a file that exists and, with a `#fragment`, to a heading of that file; the
//! README links every page of docs/; and the README opens with the two commands.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root")
}

/// The documents a reader reaches from the README.
fn documents() -> Vec<PathBuf> {
    let root = root();
    let mut documents = vec![root.join("README.md"), root.join("k8s/README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("a docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    documents.extend(pages);
    documents
}

/// The lines of `text` outside fenced code blocks.
fn prose(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// The targets of the Markdown links (`[text](target)`) of `text`, code blocks left out.
fn links(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            targets.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    targets
}

/// The anchors GitHub gives the headings of `text`: lower case, spaces as hyphens, punctuation
/// other than hyphens and underscores dropped.
fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .filter(|line| line.starts_with('#'))
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_relative_link_of_the_documentation_leads_to_a_file_and_heading_that_exist() {
    let root = root();
    let mut broken = Vec::new();
    for document in documents() {
        let text = read(&document);
        let name = document.strip_prefix(&root).unwrap_or(&document).display().to_string();
        for target in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = target.split_once('#').map_or((target.as_str(), None), |(f, a)| (f, Some(a)));
            let path = if file.is_empty() { document.clone() } else { document.parent().expect("a folder").join(file) };
            if !path.exists() {
                broken.push(format!("{name}: {target}: no such file"));
                continue;
            }
            if let Some(fragment) = fragment
                && !anchors(&read(&path)).contains(fragment)
            {
                broken.push(format!("{name}: {target}: no such heading"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_links_every_page_of_the_docs_folder() {
    let readme = read(&root().join("README.md"));
    let linked: BTreeSet<String> = links(&readme)
        .into_iter()
        .filter_map(|t| t.split('#').next().and_then(|f| f.strip_prefix("docs/")).map(str::to_owned))
        .collect();
    let unlinked: Vec<PathBuf> = documents()
        .into_iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("docs")))
        .filter(|p| !linked.contains(p.file_name().and_then(|n| n.to_str()).unwrap_or_default()))
        .collect();
    assert!(unlinked.is_empty(), "README.md does not link {unlinked:?}");
}

#[test]
fn the_readme_opens_with_the_command_that_runs_the_service_and_the_one_that_runs_the_tests() {
    let readme = read(&root().join("README.md"));
    let section = readme.split("\n## The two commands\n").nth(1).expect("a section \"The two commands\"");
    let section = section.split("\n## ").next().unwrap_or_default();
    let commands: Vec<&str> =
        section.split("```sh\n").skip(1).filter_map(|block| block.split("\n```").next()).collect();
    assert_eq!(commands, ["cargo run --release", "bash tests/clients/setup.sh && cargo nextest run --workspace"]);
    let first_section = readme.split("\n## ").nth(1).unwrap_or_default();
    assert!(first_section.starts_with("The two commands"), "the two commands come first");
}
