// Checks on the client's source that a browser test could miss: nothing in web/app/ builds
// markup from strings or evaluates code, and the page has no inline script or style (the
// server's Content-Security-Policy would refuse them, and they are how injected text runs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const app = join(dirname(fileURLToPath(import.meta.url)), '..', 'app');

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

const sources = files(app).filter((f) => f.endsWith('.js'));

test('the client has modules to check', () => {
  assert.ok(sources.length >= 3, `found ${sources.length} modules`);
});

test('no module parses strings as HTML or code', () => {
  const forbidden = [
    /\.innerHTML\b/, /\.outerHTML\b/, /insertAdjacentHTML/, /document\.write/,
    /\beval\s*\(/, /new\s+Function\s*\(/, /createContextualFragment/, /DOMParser/,
    /setTimeout\s*\(\s*['"`]/, /setInterval\s*\(\s*['"`]/,
  ];
  const found = [];
  for (const file of sources) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of forbidden) {
      if (pattern.test(text)) found.push(`${relative(app, file)}: ${pattern}`);
    }
  }
  assert.deepEqual(found, []);
});

test('the page has no inline script, handler or style', () => {
  const page = readFileSync(join(app, 'index.html'), 'utf8');
  for (const script of page.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
    assert.match(script[1], /\bsrc=/, 'every script has a src');
    assert.equal(script[2].trim(), '', 'and no body');
  }
  assert.doesNotMatch(page, /\son[a-z]+\s*=/i, 'no inline event handlers');
  assert.doesNotMatch(page, /\sstyle\s*=/i, 'no style attributes');
  assert.doesNotMatch(page, /<style\b/i, 'no style elements');
  assert.doesNotMatch(page, /https?:\/\//, 'nothing from another origin');
  assert.match(page, /%ASSETS%\/main\.js/, 'the entry module is a versioned asset');
});

test('every module imports only relative paths (no CDN, no bare packages)', () => {
  const bad = [];
  for (const file of sources) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"`]([^'"`]+)/g)) {
      const spec = m[1] ?? m[2];
      if (!spec.startsWith('./') && !spec.startsWith('../')) bad.push(`${relative(app, file)}: ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
});
