// End-to-end test of the admin dashboard in a real headless browser: Debian's Chromium
// (/usr/bin/chromium) driven by playwright-core, against a running `fairuse serve` with seeded
// data. `cargo test -p fairuse --test dashboard` starts the server, seeds it, runs this script
// and checks the API afterwards; run it directly only against a server seeded the same way.
//
// Environment:
//   FAIRUSE_E2E_BASE_URL       the server, e.g. http://127.0.0.1:8080
//   FAIRUSE_E2E_OPERATOR_KEY   an operator key; FAIRUSE_E2E_OPERATOR_NAME its name
//   FAIRUSE_E2E_VIEWER_KEY     a viewer key; FAIRUSE_E2E_VIEWER_NAME its name
//   FAIRUSE_E2E_UID            a user classified from chapter titles, in warning, with an appeal
//   FAIRUSE_E2E_OTHER_UID      a user put in throttle with set-stage
//   FAIRUSE_E2E_SCREENSHOT_DIR where the screenshots go (default: docs/ of the repository)
//   FAIRUSE_E2E_CHROMIUM       the browser (default /usr/bin/chromium)

import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') throw new Error(`set ${name}`);
  return v;
};
const BASE = env('FAIRUSE_E2E_BASE_URL').replace(/\/$/, '');
const OPERATOR_KEY = env('FAIRUSE_E2E_OPERATOR_KEY');
const OPERATOR_NAME = env('FAIRUSE_E2E_OPERATOR_NAME');
const VIEWER_KEY = env('FAIRUSE_E2E_VIEWER_KEY');
const VIEWER_NAME = env('FAIRUSE_E2E_VIEWER_NAME');
const UID = env('FAIRUSE_E2E_UID');
const OTHER_UID = env('FAIRUSE_E2E_OTHER_UID');
const SHOTS = resolve(env('FAIRUSE_E2E_SCREENSHOT_DIR', join(dirname(fileURLToPath(import.meta.url)), '..', 'docs')));
const CHROMIUM = env('FAIRUSE_E2E_CHROMIUM', '/usr/bin/chromium');
const REVIEW = process.env.FAIRUSE_E2E_REVIEW_DIR; // optional: extra screenshots for review
const TIMEOUT_MS = 15_000;

let steps = 0;
function ok(what) {
  steps += 1;
  console.log(`ok ${steps} - ${what}`);
}

/** The admin API from here (not from the page), to check what the page did. */
async function apiGet(path, key = OPERATOR_KEY) {
  const res = await fetch(`${BASE}/v1/admin/fair-use/${path}`, { headers: { 'X-Admin-Key': key } });
  assert.equal(res.status, 200, `GET ${path}: ${res.status}`);
  return res.json();
}

/** Waits until `locator` is visible and its text includes `text`. */
async function expectText(locator, text, what) {
  await locator.waitFor({ state: 'visible', timeout: TIMEOUT_MS });
  const deadline = Date.now() + TIMEOUT_MS;
  let got = '';
  for (;;) {
    got = await locator.innerText().catch(() => '');
    if (got.includes(text)) return got;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: expected ${JSON.stringify(text)} in ${JSON.stringify(got)}`);
}

async function waitFor(fn, what) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Problems the page reported: uncaught errors and Content-Security-Policy violations. */
function watch(page, problems) {
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.message}`));
  page.on('console', (msg) => {
    const text = msg.text();
    if (msg.type() !== 'error') return;
    // A refused key or action is logged by the browser as a failed resource load; that is expected.
    if (/Failed to load resource: the server responded with a status of (401|403|404)/.test(text)) return;
    problems.push(`console: ${text}`);
  });
}

async function signIn(page, key, name, role) {
  await page.locator('#signin-key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expectText(page.locator('#who-name'), name, 'signed-in name');
  await expectText(page.locator('#who-role'), role, 'signed-in role');
}

async function flaggedUids(page) {
  await page.locator('#flagged-table tbody tr').first().waitFor({ timeout: TIMEOUT_MS });
  return page.locator('#flagged-table tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.uid));
}

async function confirmDialog(page, button) {
  const dialog = page.getByRole('dialog');
  await dialog.waitFor({ timeout: TIMEOUT_MS });
  await dialog.getByRole('button', { name: button, exact: true }).click();
  await dialog.waitFor({ state: 'detached', timeout: TIMEOUT_MS });
}

async function auditOf(page, kind, actor) {
  const card = page.locator('#audit-result');
  await expectText(card, kind, 'audit entry kind');
  return expectText(card, actor, 'audit entry actor');
}

async function main() {
  await mkdir(SHOTS, { recursive: true });
  const userDataDir = await mkdtemp(join(tmpdir(), 'fairuse-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 800 },
    deviceScaleFactor: 1,
    timezoneId: 'UTC',
    locale: 'en-GB',
  });
  const problems = [];
  try {
    // ---- The files: served by the binary, with a strict policy. -------------------------------
    const redirect = await fetch(`${BASE}/admin`, { redirect: 'manual' });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.get('location'), 'admin/');
    const page = context.pages()[0] || (await context.newPage());
    watch(page, problems);
    const response = await page.goto(`${BASE}/admin`);
    assert.equal(response.status(), 200);
    assert.ok(page.url().endsWith('/admin/'), page.url());
    const csp = response.headers()['content-security-policy'] || '';
    for (const rule of ["script-src 'self'", "default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"]) {
      assert.ok(csp.includes(rule), `CSP lacks ${rule}: ${csp}`);
    }
    assert.ok(!csp.includes('unsafe-inline'), csp);
    ok('/admin redirects to /admin/, served with a Content-Security-Policy without inline script');

    // ---- Sign in. ----------------------------------------------------------------------------
    await page.locator('#signin').waitFor({ timeout: TIMEOUT_MS });
    assert.equal(await page.locator('label[for=signin-key]').innerText(), 'Admin key');
    await page.locator('#signin-key').fill('not-a-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expectText(page.locator('#signin-error'), 'not accepted', 'a wrong key');
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    ok('a wrong key is refused and not kept');

    await signIn(page, OPERATOR_KEY, OPERATOR_NAME, 'operator');
    assert.ok(!page.url().includes(OPERATOR_KEY), 'the key is never in the URL');
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem('fairuse.adminKey'), local: localStorage.length, cookie: document.cookie,
    }));
    assert.deepEqual(stored, { session: OPERATOR_KEY, local: 0, cookie: '' });
    ok(`signed in as ${OPERATOR_NAME} (operator); the key is in session storage only`);

    // ---- Flagged users: find the user. -------------------------------------------------------
    const flagged = (await apiGet('flagged?limit=200')).users;
    const byChange = [...flagged].sort((a, b) => Date.parse(b.updated_at) - Date.parse(a.updated_at) || a.uid.localeCompare(b.uid));
    assert.deepEqual(await flaggedUids(page), byChange.map((u) => u.uid), 'newest change first');
    assert.ok(byChange.some((u) => u.uid === UID) && byChange.some((u) => u.uid === OTHER_UID));
    await page.locator('h1').first().focus();
    await page.screenshot({ path: join(SHOTS, 'dashboard-flagged.png') });
    ok(`the flagged list shows ${byChange.length} users, newest change first (screenshot dashboard-flagged.png)`);

    await page.getByLabel('Sort').selectOption('oldest');
    assert.deepEqual(await flaggedUids(page), byChange.map((u) => u.uid).reverse(), 'oldest change first');
    await page.getByLabel('Sort').selectOption('newest');
    await page.getByLabel('Stage', { exact: true }).selectOption('throttle');
    await waitFor(async () => {
      const uids = await flaggedUids(page);
      return uids.length === flagged.filter((u) => u.stage === 'throttle').length && uids.includes(OTHER_UID) && !uids.includes(UID);
    }, 'the stage filter');
    await page.getByLabel('Stage', { exact: true }).selectOption('');
    await waitFor(async () => (await flaggedUids(page)).length === flagged.length, 'all stages again');
    ok('filters by stage and sorts by last change');

    const hank = flagged.find((u) => u.uid === UID);
    const search = page.getByLabel('Search by uid or case reference');
    await search.fill(hank.last_case_ref.toLowerCase());
    assert.deepEqual(await flaggedUids(page), [UID], 'search by case reference');
    await search.fill(OTHER_UID);
    assert.deepEqual(await flaggedUids(page), [OTHER_UID], 'search by uid');
    // A case reference that is not a user's latest (the appeal's own) is looked up in the API.
    const user0 = await apiGet(`user/${encodeURIComponent(UID)}`);
    const appealEvent = user0.events.find((e) => e.kind === 'appeal');
    assert.ok(appealEvent, 'the seeded user has an appeal');
    await search.fill(appealEvent.case_ref);
    await search.press('Enter');
    await page.waitForURL(`**/admin/#/user/${encodeURIComponent(UID)}`, { timeout: TIMEOUT_MS });
    await page.locator('#speech-chart').waitFor({ timeout: TIMEOUT_MS });
    await page.goBack();
    await search.fill(UID);
    assert.deepEqual(await flaggedUids(page), [UID], 'search by uid');
    await page.locator('#flagged-table').getByRole('link', { name: UID, exact: true }).click();
    ok('searches by uid and by case reference (any event\'s, through the API), and opens the user');

    // ---- The user's page: chart, windows, budget, evidence, appeal. ---------------------------
    await page.locator('#speech-chart').waitFor({ timeout: TIMEOUT_MS });
    await expectText(page.locator('#user-title'), UID, 'user page title');
    const chart = page.locator('#speech-chart');
    for (const lane of ['realtime', 'sync_fresh', 'sync_backfill', 'custom_stt']) {
      assert.ok(await chart.locator(`rect[data-lane=${lane}]`).count() > 0, `bars of lane ${lane}`);
    }
    assert.equal(await chart.locator('line[data-cap=cap-daily]').count(), 1, 'the daily cap line');
    assert.equal(await chart.locator('line[data-cap=cap-three-day]').count(), 1, 'the 3-day cap line');
    assert.equal(await chart.locator('path.total-24').count(), 1, 'the trailing 24 h line');
    const desc = await chart.locator('desc').textContent();
    assert.ok(desc.includes('over the cap'), desc);
    await chart.focus();
    const last = await page.locator('#chart-readout').innerText();
    await page.keyboard.press('ArrowLeft');
    const before = await page.locator('#chart-readout').innerText();
    assert.notEqual(before, last, 'the arrow keys move through the hours');
    assert.match(before, /UTC/);
    ok('the chart shows every lane, the caps as lines, and reads hours out from the keyboard');

    await expectText(page.locator('#windows'), 'over', 'the 24 h window is over its cap');
    await expectText(page.locator('#windows'), '2 h', 'the free plan\'s daily cap');
    await expectText(page.locator('#budget'), 'No STT budget applies at stage warning', 'no budget in warning');
    const classified = page.locator('li[data-kind=classified]').first();
    await expectText(classified, 'audiobook', 'verdict type');
    await expectText(classified, '1.00', 'verdict score');
    await expectText(classified, 'prerecorded', 'a recipe');
    const evidence = classified.locator('table.evidence');
    await expectText(evidence, 'The Hobbit - Chapter 1', 'evidence title');
    await expectText(evidence, 'c1', 'evidence conversation');
    await expectText(evidence, 'chapter', 'evidence reason');
    // The appeal is shown as text, never as markup.
    await expectText(page.locator('#appeals'), '<b>not</b> audiobooks', 'the appeal, escaped');
    await expectText(page.locator('#appeals'), 'not resolved yet', 'the appeal is open');
    assert.equal(await page.locator('#appeals b').count(), 0, 'no markup from data');
    await page.locator('#user-title').focus();
    await page.screenshot({ path: join(SHOTS, 'dashboard-user.png') });
    await classified.scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(SHOTS, 'dashboard-user-evidence.png') });
    ok('the user page shows windows, budget, the verdict with its evidence and the appeal (screenshots dashboard-user*.png)');

    // ---- Actions: each asks first and shows the audit entry it wrote. -------------------------
    await page.locator('#action-reset').click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('dialog').waitFor({ state: 'detached', timeout: TIMEOUT_MS });
    assert.equal((await apiGet(`user/${encodeURIComponent(UID)}`)).state.stage, 'warning', 'a cancelled reset changes nothing');
    ok('cancelling a confirmation changes nothing');

    await classified.getByRole('button', { name: 'Overturn…' }).click();
    const dlg = page.getByRole('dialog');
    assert.equal(await dlg.getByLabel('Overturned: the verdict was wrong').isChecked(), true);
    await dlg.getByLabel('Notes').fill('Own lectures, confirmed by support');
    if (REVIEW) await page.screenshot({ path: join(REVIEW, 'dialog.png') });
    await confirmDialog(page, 'Resolve');
    await auditOf(page, 'Verdict resolved', OPERATOR_NAME);
    await expectText(page.locator('li[data-kind=classified]').first(), `Overturned by ${OPERATOR_NAME}`, 'the verdict is overturned');
    await expectText(page.locator('#appeals'), `overturned by ${OPERATOR_NAME}`, 'the appeal shows the outcome');
    ok('overturns the verdict, with notes, and shows the audit entry');

    const until = new Date(Date.now() + 3 * 86_400_000);
    const untilInput = until.toISOString().slice(0, 16);
    await page.locator('#action-set-stage').click();
    await page.getByRole('dialog').getByLabel('Stage').selectOption('throttle');
    await page.getByRole('dialog').getByLabel('Expires (UTC, optional)').fill(untilInput);
    await page.getByRole('dialog').getByLabel('Reason').fill('second opinion pending');
    await confirmDialog(page, 'Set stage');
    const setAudit = await auditOf(page, 'Stage set by an admin', OPERATOR_NAME);
    assert.ok(setAudit.includes('warning → throttle'), setAudit);
    assert.ok(setAudit.includes(`${untilInput.replace('T', ' ')} UTC`), setAudit);
    ok('sets a stage with an expiry and a reason');

    await page.locator('#action-exempt').click();
    await confirmDialog(page, 'Exempt');
    await auditOf(page, 'Exempted', OPERATOR_NAME);
    await expectText(page.locator('#action-exempt'), 'Remove exemption', 'the button flips');
    await page.locator('#action-exempt').click();
    await confirmDialog(page, 'Remove exemption');
    await auditOf(page, 'Exemption removed', OPERATOR_NAME);
    ok('exempts and un-exempts');

    await page.locator('#action-reset').click();
    await page.getByRole('dialog').getByLabel('Reason').fill('appeal accepted');
    await confirmDialog(page, 'Reset');
    const resetAudit = await auditOf(page, 'Reset by an admin', OPERATOR_NAME);
    if (REVIEW) await page.screenshot({ path: join(REVIEW, 'audit.png') });
    assert.ok(resetAudit.includes('throttle → none'), resetAudit);
    await expectText(page.locator('.status-line'), 'none', 'the stage is none');
    ok('resets the user and shows the audit entry');

    // ---- The result, through the API. --------------------------------------------------------
    const after = await apiGet(`user/${encodeURIComponent(UID)}`);
    assert.equal(after.state.stage, 'none');
    const verdict = after.events.find((e) => e.event_id === user0.events.find((x) => x.kind === 'classified').event_id);
    assert.equal(verdict.resolution.outcome, 'overturned');
    assert.equal(verdict.resolution.resolved_by, OPERATOR_NAME);
    const kinds = after.events.filter((e) => e.actor === OPERATOR_NAME).map((e) => e.kind);
    for (const k of ['admin_resolve', 'admin_set_stage', 'admin_exempt', 'admin_unexempt', 'admin_reset']) {
      assert.ok(kinds.includes(k), `${k} in ${kinds}`);
    }
    ok('the API shows the overturned verdict, the reset and every audit entry');

    // ---- A viewer, in another tab: sees, cannot change. --------------------------------------
    const viewerPage = await context.newPage();
    await viewerPage.goto(`${BASE}/admin/`);
    await viewerPage.locator('#signin').waitFor({ timeout: TIMEOUT_MS });
    // The policy's Trusted Types rule refuses HTML strings outright (checked before watching the
    // console, since the browser logs the refusal).
    const htmlString = await viewerPage.evaluate(() => {
      try {
        document.createElement('div').innerHTML = '<b>x</b>';
        return 'accepted';
      } catch (e) {
        return e.name;
      }
    });
    assert.equal(htmlString, 'TypeError', 'an HTML string is refused by Trusted Types');
    watch(viewerPage, problems);
    ok('another tab does not share the sign-in (session storage is per tab)');
    await signIn(viewerPage, VIEWER_KEY, VIEWER_NAME, 'viewer');
    await viewerPage.locator('#flagged-table').getByRole('link', { name: OTHER_UID, exact: true }).click();
    await viewerPage.locator('#speech-chart').waitFor({ timeout: TIMEOUT_MS });
    await expectText(viewerPage.locator('#actions'), 'viewer', 'the viewer note');
    if (REVIEW) await viewerPage.screenshot({ path: join(REVIEW, 'viewer.png'), fullPage: true });
    for (const sel of ['#action-reset', '#action-set-stage', '#action-exempt']) {
      assert.equal(await viewerPage.locator(sel).count(), 0, `${sel} is hidden from a viewer`);
    }
    await viewerPage.goto(`${BASE}/admin/#/user/${encodeURIComponent(UID)}`);
    await viewerPage.locator('li[data-kind=classified]').first().waitFor({ timeout: TIMEOUT_MS });
    assert.equal(await viewerPage.getByRole('button', { name: /Overturn|Uphold/ }).count(), 0, 'no resolve buttons for a viewer');
    // Even a request made by hand from the page with the viewer's key is refused.
    const refused = await viewerPage.evaluate(async (uid) => {
      const res = await fetch(`../v1/admin/fair-use/user/${encodeURIComponent(uid)}/reset`, {
        method: 'POST',
        headers: { 'X-Admin-Key': sessionStorage.getItem('fairuse.adminKey'), 'Content-Type': 'application/json' },
        body: JSON.stringify({ reason: 'viewer tries' }),
      });
      return res.status;
    }, OTHER_UID);
    assert.equal(refused, 403);
    assert.equal((await apiGet(`user/${encodeURIComponent(OTHER_UID)}`)).state.stage, 'throttle', 'still throttled');
    ok('a viewer sees no actions, and a reset with the viewer key is refused (403)');

    await viewerPage.getByRole('button', { name: 'Sign out' }).click();
    await viewerPage.locator('#signin').waitFor({ timeout: TIMEOUT_MS });
    assert.equal(await viewerPage.evaluate(() => sessionStorage.length), 0);
    ok('signing out forgets the key');

    assert.deepEqual(problems, [], 'no uncaught error and no Content-Security-Policy violation');
    ok('no uncaught error and no Content-Security-Policy violation');
  } finally {
    await context.close();
    await rm(userDataDir, { recursive: true, force: true });
  }
  console.log(`e2e: all ${steps} steps passed`);
}

main().catch((err) => {
  console.error(`not ok - ${err.stack || err}`);
  process.exit(1);
});
