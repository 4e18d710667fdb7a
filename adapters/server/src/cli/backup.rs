//! `backup --to FILE`: a consistent copy of a running registry's embedded database, taken by the
//! registry while it serves (`GET /backup`, Admin) and written to FILE. Like `etcdctl snapshot
//! save` or `consul snapshot save`, it needs only the URL and a key, so it works from anywhere
//! that reaches the API (through `kubectl port-forward` too), never on the database file itself.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use super::Output;
use super::client::{CliError, Client};

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8] = b"SQLite format 3\0";

#[derive(Args, Debug)]
pub struct Backup {
    /// The file to write the copy to (a SQLite database: restore by starting a registry on it).
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
}

pub async fn run(client: Client, args: Backup) -> Result<(), CliError> {
    if args.to.exists() && !args.force {
        return Err(CliError::Usage(format!("{} exists; choose another file or pass --force", args.to.display())));
    }
    let mut response = client.open(client.download_request(client.url(&["backup"], &[]))).await?;
    let expected = response.content_length();
    // Written beside FILE under another name, then renamed: FILE is never a partial copy.
    let partial = partial_name(&args.to);
    let failed = |e: std::io::Error| CliError::Failed(format!("cannot write {}: {e}", partial.display()));
    let mut file = std::fs::File::create(&partial).map_err(failed)?;
    let mut written = 0_u64;
    let mut head: Vec<u8> = Vec::new();
    let received = async {
        while let Some(chunk) = response.chunk().await.map_err(|e| client.unreachable(&e))? {
            if head.len() < SQLITE_HEADER.len() {
                head.extend(chunk.iter().copied().take(SQLITE_HEADER.len() - head.len()));
            }
            file.write_all(&chunk).map_err(failed)?;
            written += chunk.len() as u64;
        }
        file.sync_all().map_err(failed)?;
        if expected.is_some_and(|n| n != written) || head != SQLITE_HEADER {
            return Err(CliError::Failed(format!(
                "the registry sent an incomplete copy ({written} of {} bytes); nothing was written to {}",
                expected.map_or_else(|| "?".to_owned(), |n| n.to_string()),
                args.to.display()
            )));
        }
        std::fs::rename(&partial, &args.to)
            .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", args.to.display())))
    }
    .await;
    if received.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    received?;
    match client.output {
        Output::Json => println!("{}", json!({"file": args.to, "bytes": written})),
        Output::Table => println!("wrote {} ({written} bytes)", args.to.display()),
    }
    Ok(())
}

/// `FILE.partial` in FILE's directory.
fn partial_name(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    to.with_file_name(name)
}
