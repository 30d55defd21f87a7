// Starts a real `banter serve` on a free loopback port with a fresh data directory, for the web
// client's tests. The binary is $BANTER_BIN, or target/debug/banter of this checkout.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BANTER_BIN = process.env.BANTER_BIN ?? join(root, 'target', 'debug', 'banter');
export const PASSWORD = 'correct horse battery';

// Cheap password hashing and generous per-address limits: every test user comes from 127.0.0.1.
const FAST = [
  '--password-memory-kib', '64', '--password-iterations', '1',
  '--register-per-address-per-hour', '100000', '--register-burst', '10000',
  '--login-failures-per-address', '10000',
  '--max-pending-per-ip', '1000',
];

/**
 * Starts a server. `args` are extra `serve` flags. Resolves once it listens.
 * @returns {Promise<{url: string, addr: string, stop: () => Promise<void>}>}
 */
export async function startServer(args = []) {
  const dir = mkdtempSync(join(tmpdir(), 'banter-web-'));
  const child = spawn(
    BANTER_BIN,
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data'), ...FAST, ...args],
    { env: { ...process.env, RUST_LOG: 'info' }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const lines = createInterface({ input: child.stdout });
  const addr = await new Promise((resolve, reject) => {
    child.once('error', reject);
    exited.then((code) => reject(new Error(`banter exited (${code}) before listening; is ${BANTER_BIN} built?`)));
    lines.on('line', (line) => {
      const m = line.match(/banter listening.*addr=(\S+)/);
      if (m) resolve(m[1]);
    });
  });
  // Keep draining the log so the server never blocks on a full pipe.
  lines.on('line', () => {});
  return {
    addr,
    url: `http://${addr}`,
    async stop() {
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Registers `username` over HTTP and returns the created user. */
export async function register(url, username, password = PASSWORD) {
  const res = await fetch(`${url}/v1/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (res.status !== 201) throw new Error(`register ${username}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** A fresh, unique username for this test run. */
let counter = 0;
export function uniqueName(prefix = 'u') {
  counter += 1;
  return `${prefix}${process.pid % 10000}_${counter}`;
}
