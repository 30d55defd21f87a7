// Launches Debian's Chromium through playwright-core (Playwright cannot download a browser here),
// opens the app in it, and checks a page with axe-core.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** Where screenshots and other test output go (not committed). */
export const OUTPUT_DIR = process.env.WEB_TEST_OUTPUT ?? join(root, 'target', 'web-test-output');

export async function launch() {
  mkdirSync(OUTPUT_DIR, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // Voice notes: a fake microphone (a beep), granted without asking.
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    ],
  });
}

/**
 * A new browser context (one "person": own storage) with a page open on the app.
 * Every page dialog fails the test: message text must never run as script.
 */
export async function openApp(browser, url, { width = 1280, height = 800, colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, colorScheme });
  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(url);
  return { context, page, dialogs, errors };
}

/** Closes sessions from openApp, failing first if any page opened a dialog or threw. */
export async function closeCleanly(...sessions) {
  for (const s of sessions) {
    assert.deepEqual(s.dialogs, []);
    assert.deepEqual(s.errors.map(String), []);
    await s.context.close();
  }
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** Runs axe-core on the page and returns its serious and critical violations, described. */
export async function seriousViolations(page) {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => (await globalThis.axe.run(document, {
    resultTypes: ['violations'],
  })).violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
  })));
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}
