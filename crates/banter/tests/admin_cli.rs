//! `banter admin …` driving the real binary against a real `banter serve`: every subcommand,
//! text and `--json` output, the bad paths (no token, a wrong one, bad ids), and that the
//! server's log names every admin action without ever printing the admin token, an
//! invitation code or a password.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use banter_client::Api;
use banter_client::protocol::ErrorCode;
use serde_json::Value;

const TOKEN: &str = "cli-test-admin-token-0123456789abcdef";

mod common;

use common::{PASSWORD, Process};

/// A `banter serve` with an admin token, whose log lines are kept.
struct Server {
    process: Process,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(signup: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_banter"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--signup", signup])
            .args(["--password-memory-kib", "64", "--password-iterations", "1"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("BANTER_ADMIN_TOKEN", TOKEN)
            .env_remove("BANTER_CONFIG");
        let process = Process::spawn(command);
        Self {
            addr: process.addr.clone(),
            process,
            _dir: dir,
        }
    }

    /// Runs `banter admin <args>` against this server with the right token.
    fn admin(&self, args: &[&str]) -> Output {
        self.admin_with(args, Some(TOKEN), None)
    }

    fn admin_with(&self, args: &[&str], token: Option<&str>, stdin: Option<&str>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_banter"));
        command
            .arg("admin")
            .args(["--server", &format!("http://{}", self.addr)])
            .args(args)
            .env_remove("BANTER_ADMIN_TOKEN")
            .env_remove("BANTER_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = token {
            command.env("BANTER_ADMIN_TOKEN", token);
        }
        let mut child = command.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// `banter admin --json <args>`, which must succeed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.admin(&all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// `banter admin <args>`: its text output, which must succeed.
    fn text(&self, args: &[&str]) -> String {
        let out = self.admin(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn log(&self) -> String {
        self.process.log_text()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails with `code` on stderr.
fn fails(out: &Output, code: &str) {
    assert!(
        !out.status.success(),
        "should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr(out).contains(code), "{code} not in {}", stderr(out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_command_against_a_running_server() {
    let server = Server::start("invite");
    let api = Api::new(server.addr.clone());

    // Users.
    let out = server.admin_with(
        &["user", "create", "alice"],
        Some(TOKEN),
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("created"));
    let bob = server.admin_with(
        &["--json", "user", "create", "bob"],
        Some(TOKEN),
        Some(PASSWORD),
    );
    let bob: Value = serde_json::from_slice(&bob.stdout).unwrap();
    let bob_id = bob["id"].as_str().unwrap().to_owned();
    let no_password = server.admin_with(&["user", "create", "carol"], Some(TOKEN), Some(""));
    fails(&no_password, "password");
    let listed = server.json(&["user", "list"]);
    let names: Vec<_> = listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let page = server.json(&["user", "list", "--limit", "1"]);
    assert_eq!(page["next"], "alice");
    let rest = server.json(&["user", "list", "--after", "alice"]);
    assert_eq!(rest["users"][0]["username"], "bob");
    assert!(
        server
            .text(&["user", "list", "--prefix", "AL"])
            .contains("alice")
    );
    let login = api.login("bob", PASSWORD, Some("phone")).await.unwrap();
    let shown = server.json(&["user", "show", &bob_id]);
    assert_eq!(
        (
            shown["sessions"].as_u64(),
            shown["user"]["disabled"].as_bool()
        ),
        (Some(1), Some(false))
    );
    assert!(
        server
            .text(&["user", "show", &bob_id])
            .contains("sessions 1")
    );

    // Sessions.
    let sessions = server.json(&["session", "list", &bob_id]);
    assert_eq!(sessions[0]["id"].as_str(), Some(login.session_id.as_str()));
    assert!(server.text(&["session", "list", &bob_id]).contains("phone"));
    assert!(
        server
            .text(&["session", "revoke", &bob_id, &login.session_id])
            .contains("revoked")
    );
    fails(
        &server.admin(&["session", "revoke", &bob_id, &login.session_id]),
        "unknown_session",
    );
    assert!(api.me(&login.token).await.is_err());

    // Disable, enable.
    assert!(
        server
            .text(&["user", "disable", &bob_id])
            .contains("disabled")
    );
    let refused = api.login("bob", PASSWORD, None).await.unwrap_err();
    assert!(
        matches!(refused, banter_client::ClientError::Api { ref body, .. } if body.code == ErrorCode::AccountDisabled)
    );
    assert_eq!(server.json(&["user", "enable", &bob_id])["disabled"], false);
    api.login("bob", PASSWORD, None).await.unwrap();

    // Invitations.
    let invite = server.json(&["invite", "create", "--uses", "2", "--ttl-secs", "3600"]);
    let code = invite["code"].as_str().unwrap().to_owned();
    let invite_id = invite["id"].as_str().unwrap().to_owned();
    api.register_invited("dave", PASSWORD, Some(&code))
        .await
        .unwrap();
    let text = server.text(&["invite", "create"]);
    assert!(text.contains("shown only now"), "{text}");
    let second_code = text.lines().last().unwrap().trim().to_owned();
    let list = server.text(&["invite", "list"]);
    assert!(list.contains("1/2 uses left"), "{list}");
    assert!(!list.contains(&code) && !list.contains(&second_code));
    let listed = server.json(&["invite", "list", "--limit", "1"]);
    assert!(listed["next"].is_string());
    assert!(
        server
            .text(&["invite", "revoke", &invite_id])
            .contains("revoked")
    );
    fails(
        &server.admin(&["invite", "revoke", &invite_id]),
        "unknown_invite",
    );
    fails(
        &server.admin(&["invite", "create", "--uses", "0"]),
        "invalid_field",
    );
    assert!(
        api.register_invited("erin", PASSWORD, Some(&code))
            .await
            .is_err()
    );

    // Stats, then delete.
    let stats = server.json(&["stats"]);
    assert_eq!(
        (stats["users"].as_u64(), stats["live_invites"].as_u64()),
        (Some(3), Some(1))
    );
    assert!(server.text(&["stats"]).contains("users           3"));
    assert!(
        server
            .text(&["user", "delete", &bob_id])
            .contains("deleted")
    );
    fails(&server.admin(&["user", "delete", &bob_id]), "unknown_user");
    fails(&server.admin(&["user", "show", "nobody"]), "unknown_user");
    assert_eq!(
        server.json(&["user", "show", &bob_id])["user"]["deleted"],
        true
    );

    // Bad credentials never reach an action.
    fails(
        &server.admin_with(
            &["stats"],
            Some("wrong-token-wrong-token-wrong-token"),
            None,
        ),
        "unauthorized",
    );
    fails(&server.admin_with(&["stats"], None, None), "no admin token");
    fails(
        &Command::new(env!("CARGO_BIN_EXE_banter"))
            .args([
                "admin",
                "--server",
                "https://x:1",
                "--admin-token",
                TOKEN,
                "stats",
            ])
            .output()
            .unwrap(),
        "https",
    );

    // Every action is in the log, by name and ids; no secret is.
    let log = server.log();
    for action in [
        "user.create",
        "user.disable",
        "user.enable",
        "user.delete",
        "session.revoke",
        "invite.create",
        "invite.revoke",
    ] {
        assert!(
            log.contains(&format!("action=\"{action}\""))
                || log.contains(&format!("action={action}")),
            "{action} not logged:\n{log}"
        );
    }
    assert!(log.contains(&format!("user={bob_id}")), "{log}");
    for secret in [TOKEN, &code, &second_code, PASSWORD, &login.token] {
        assert!(
            !log.contains(secret),
            "the log shows a secret: {secret}\n{log}"
        );
    }
}

#[test]
fn help_lists_only_commands_that_exist() {
    let out = Command::new(env!("CARGO_BIN_EXE_banter"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        [
            "serve",
            "default-config",
            "bench",
            "backup",
            "restore",
            "admin",
            "help"
        ]
    );
    for command in &commands[..6] {
        let out = Command::new(env!("CARGO_BIN_EXE_banter"))
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{command} --help");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_banter"))
        .args(["admin", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for sub in ["user", "session", "invite", "stats"] {
        assert!(help.contains(sub), "{help}");
    }
    assert!(!help.contains(TOKEN));
}
