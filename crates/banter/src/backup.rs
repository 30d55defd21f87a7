//! `banter backup` and `banter restore`.

use std::path::PathBuf;

use banter_server::config::StoreUrl;
use banter_server::store::sqlite::backup::{self, Copied};
use banter_server::{Config, Overrides};

/// Which data directory: `--data-dir`, or the one a configuration file names.
#[derive(Debug, clap::Args)]
pub(crate) struct Where {
    /// The data directory [default: banter-data].
    #[arg(long, env = "BANTER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A configuration file whose `data_dir` to use (relative to the file).
    #[arg(long, env = "BANTER_CONFIG")]
    config: Option<PathBuf>,
    /// The server's store: these commands refuse a PostgreSQL one (use its own tools).
    #[arg(long, env = "BANTER_STORE", hide_env_values = true)]
    store: Option<StoreUrl>,
}

impl Where {
    /// The data directory of the embedded store; an error naming PostgreSQL's own tools when
    /// the configuration's `store` is a PostgreSQL database.
    fn data_dir(self, what: &str, instead: &str) -> anyhow::Result<PathBuf> {
        let config = Config::load(Overrides {
            config: self.config,
            data_dir: self.data_dir,
            store: self.store,
            ..Overrides::default()
        })?;
        if config.store.is_set() {
            anyhow::bail!(
                "banter {what} works on the embedded SQLite store only, and this configuration's \
                 store is PostgreSQL ({}): use {instead} instead",
                config.store
            );
        }
        Ok(config.data_dir)
    }
}

/// `banter backup DEST`: a consistent copy of the database, safe while the server runs.
#[derive(Debug, clap::Args)]
pub(crate) struct BackupArgs {
    /// The new file to write (an existing one is never overwritten).
    dest: PathBuf,
    #[command(flatten)]
    from: Where,
}

/// `banter restore SRC`: a backup as the database of an empty data directory.
#[derive(Debug, clap::Args)]
pub(crate) struct RestoreArgs {
    /// The backup file.
    src: PathBuf,
    #[command(flatten)]
    to: Where,
}

pub(crate) fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let dir = args.from.data_dir("backup", "pg_dump")?;
    let copied = backup::backup(&dir, &args.dest)?;
    report("backed up", &copied);
    Ok(())
}

pub(crate) fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let dir = args
        .to
        .data_dir("restore", "pg_restore (or psql for a plain pg_dump file)")?;
    let copied = backup::restore(&args.src, &dir)?;
    report("restored", &copied);
    Ok(())
}

fn report(what: &str, c: &Copied) {
    println!(
        "{what} {} ({} bytes, {} users, {} conversation entries) in {} ms",
        c.path.display(),
        c.bytes,
        c.users,
        c.entries,
        c.took.as_millis()
    );
}
