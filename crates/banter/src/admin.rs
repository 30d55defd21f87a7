//! `banter admin …`: the operator's commands, each one call to the admin HTTP API of a running
//! server (so they work against any node of a cluster), printed for people or, with `--json`,
//! as the API's JSON.

use std::io::BufRead as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use banter_client::protocol::admin::{AdminSession, AdminUser, InviteInfo};
use banter_client::{AdminApi, ClientError};
use banter_server::{Config, Overrides};
use clap::{Args, Subcommand};

/// Options of every admin command.
#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The server's base URL [default: http://<listen> from --config, else http://127.0.0.1:8080].
    #[arg(long, global = true)]
    server: Option<String>,
    /// The server's admin token [default: admin_token from --config].
    #[arg(
        long,
        env = "BANTER_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    admin_token: Option<String>,
    /// The server's TOML configuration file, for its `listen` address and `admin_token`.
    #[arg(long, env = "BANTER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// A user's login sessions (devices).
    #[command(subcommand)]
    Session(SessionCommand),
    /// Invitation codes (for `signup = "invite"`).
    #[command(subcommand)]
    Invite(InviteCommand),
    /// Counts of users, sessions, connections, groups, messages, rooms and invitations.
    Stats,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account (under any sign-up policy); the password is read from stdin.
    Create {
        /// Username: 3–32 of a-z 0-9 _ . -
        username: String,
    },
    /// List accounts by username, paged.
    List {
        /// Only usernames starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Start after this username (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Page size, 1–200.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show an account with its session and connection counts.
    Show {
        /// User id.
        id: String,
    },
    /// Disable an account: close its sockets, revoke its sessions, refuse its logins.
    Disable {
        /// User id.
        id: String,
    },
    /// Enable a disabled account.
    Enable {
        /// User id.
        id: String,
    },
    /// Delete an account (docs/OPERATIONS.md says what happens to its messages and groups).
    Delete {
        /// User id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// List a user's live sessions.
    List {
        /// User id.
        user: String,
    },
    /// Revoke one session (its sockets close at once).
    Revoke {
        /// User id.
        user: String,
        /// Session id.
        session: String,
    },
}

#[derive(Debug, Subcommand)]
enum InviteCommand {
    /// Create an invitation code (shown once).
    Create {
        /// Registrations it admits, 1–1000.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Seconds until it expires, 60–31536000.
        #[arg(long, default_value_t = 7 * 24 * 3600)]
        ttl_secs: u64,
    },
    /// List invitations, newest first (never their codes).
    List {
        /// Start before this id (the `next` of the previous page).
        #[arg(long)]
        before: Option<String>,
        /// Page size, 1–200.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Revoke an invitation.
    Revoke {
        /// Invitation id.
        id: String,
    },
}

/// `host:port` from `http://host:port[/]` or `host:port`.
fn server_addr(url: &str) -> anyhow::Result<String> {
    if url.starts_with("https://") {
        bail!("https is not supported by `banter admin`; use the node's plain http address");
    }
    let addr = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/');
    if addr.is_empty() || addr.contains('/') {
        bail!("--server must look like http://127.0.0.1:8080");
    }
    Ok(addr.to_owned())
}

/// The API client, from the flags, the environment and the config file.
fn client(args: &AdminArgs) -> anyhow::Result<AdminApi> {
    let config = Config::load(Overrides {
        config: args.config.clone(),
        ..Overrides::default()
    })?;
    let addr = match &args.server {
        Some(url) => server_addr(url)?,
        None => {
            let mut listen = config.listen.0;
            if listen.ip().is_unspecified() {
                listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            listen.to_string()
        }
    };
    let token = match &args.admin_token {
        Some(token) => token.clone(),
        None if config.admin_token.is_set() => config.admin_token.expose().to_owned(),
        None => bail!("no admin token: pass --admin-token or set BANTER_ADMIN_TOKEN"),
    };
    Ok(AdminApi::new(addr, token))
}

/// Runs one admin command.
pub(crate) fn run(args: AdminArgs) -> anyhow::Result<()> {
    let api = client(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime
        .block_on(execute(&api, args.command, args.json))
        .map_err(|e| match e {
            Failure::Api(ClientError::Api { status, body }) => {
                anyhow::anyhow!("{} (HTTP {status}): {}", body.code, body.message)
            }
            Failure::Api(e) => anyhow::anyhow!("cannot reach the server: {e}"),
            Failure::Other(e) => e,
        })
}

enum Failure {
    Api(ClientError),
    Other(anyhow::Error),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Self::Api(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

/// Prints `value` as JSON, or as `text` renders it.
fn show<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce(&T) -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("API values serialize")
        );
    } else {
        print!("{}", text(value));
    }
}

fn user_line(u: &AdminUser) -> String {
    let state = match (u.deleted, u.disabled) {
        (true, _) => "deleted",
        (false, true) => "disabled",
        (false, false) => "active",
    };
    format!("{:>8}  {:<32}  {state}\n", u.id, u.username)
}

fn session_line(s: &AdminSession) -> String {
    format!(
        "{:>8}  {:<40}  since {}  expires {}\n",
        s.id,
        s.device,
        when(s.created_at),
        when(s.expires_at)
    )
}

fn invite_line(i: &InviteInfo) -> String {
    let state = if i.revoked { "  revoked" } else { "" };
    format!(
        "{:>8}  {}/{} uses left  expires {}{state}\n",
        i.id,
        i.uses_left,
        i.uses,
        when(i.expires_at)
    )
}

/// UTC milliseconds as `YYYY-MM-DD hh:mm UTC`.
fn when(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("give the new user's password on stdin (one line)");
    }
    Ok(password)
}

async fn execute(api: &AdminApi, command: AdminCommand, json: bool) -> Result<(), Failure> {
    match command {
        AdminCommand::User(c) => user(api, c, json).await,
        AdminCommand::Session(SessionCommand::List { user }) => {
            let sessions = api.sessions(&user).await?;
            show(json, &sessions, |s| s.iter().map(session_line).collect());
            Ok(())
        }
        AdminCommand::Session(SessionCommand::Revoke { user, session }) => {
            api.revoke_session(&user, &session).await?;
            show(json, &serde_json::json!({}), |_| {
                format!("revoked session {session} of user {user}\n")
            });
            Ok(())
        }
        AdminCommand::Invite(c) => invite(api, c, json).await,
        AdminCommand::Stats => {
            let stats = api.stats().await?;
            show(json, &stats, |s| {
                format!(
                    "users           {}\ndisabled users  {}\nsessions        {}\n\
                     connections     {}\ngroups          {}\nconversations   {}\n\
                     messages        {}\nrooms           {}\nlive invites    {}\n",
                    s.users,
                    s.disabled_users,
                    s.sessions,
                    s.connections,
                    s.groups,
                    s.conversations,
                    s.messages,
                    s.rooms,
                    s.live_invites
                )
            });
            Ok(())
        }
    }
}

async fn user(api: &AdminApi, command: UserCommand, json: bool) -> Result<(), Failure> {
    match command {
        UserCommand::Create { username } => {
            let password = read_password()?;
            let user = api.create_user(&username, &password).await?;
            show(json, &user, |u| format!("created {}", user_line(u)));
        }
        UserCommand::List {
            prefix,
            after,
            limit,
        } => {
            let page = api
                .users(prefix.as_deref(), after.as_deref(), limit)
                .await?;
            show(json, &page, |p| {
                let mut out: String = p.users.iter().map(user_line).collect();
                if let Some(next) = &p.next {
                    out.push_str(&format!("more: --after {next}\n"));
                }
                out
            });
        }
        UserCommand::Show { id } => {
            let detail = api.user(&id).await?;
            show(json, &detail, |d| {
                format!(
                    "{}created {}  sessions {}  connections {}\n",
                    user_line(&d.user),
                    when(d.user.created_at),
                    d.sessions,
                    d.connections
                )
            });
        }
        UserCommand::Disable { id } => {
            let user = api.set_disabled(&id, true).await?;
            show(json, &user, |u| format!("disabled {}", user_line(u)));
        }
        UserCommand::Enable { id } => {
            let user = api.set_disabled(&id, false).await?;
            show(json, &user, |u| format!("enabled {}", user_line(u)));
        }
        UserCommand::Delete { id } => {
            api.delete_user(&id).await?;
            show(json, &serde_json::json!({}), |_| {
                format!("deleted user {id}\n")
            });
        }
    }
    Ok(())
}

async fn invite(api: &AdminApi, command: InviteCommand, json: bool) -> Result<(), Failure> {
    match command {
        InviteCommand::Create { uses, ttl_secs } => {
            let invite = api.create_invite(Some(uses), Some(ttl_secs)).await?;
            show(json, &invite, |i| {
                format!(
                    "invitation {} ({} uses, expires {}); the code is shown only now:\n{}\n",
                    i.id,
                    i.uses,
                    when(i.expires_at),
                    i.code
                )
            });
        }
        InviteCommand::List { before, limit } => {
            let page = api.invites(before.as_deref(), limit).await?;
            show(json, &page, |p| {
                let mut out: String = p.invites.iter().map(invite_line).collect();
                if let Some(next) = &p.next {
                    out.push_str(&format!("more: --before {next}\n"));
                }
                out
            });
        }
        InviteCommand::Revoke { id } => {
            api.revoke_invite(&id).await?;
            show(json, &serde_json::json!({}), |_| {
                format!("revoked invitation {id}\n")
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(when(1_795_000_000_000), "2026-11-18 11:06 UTC");
    }

    #[test]
    fn server_urls() {
        assert_eq!(
            server_addr("http://127.0.0.1:8080/").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(server_addr("10.0.0.2:9000").unwrap(), "10.0.0.2:9000");
        assert!(server_addr("https://x:1").is_err());
        assert!(server_addr("http://x:1/v1").is_err());
    }
}
