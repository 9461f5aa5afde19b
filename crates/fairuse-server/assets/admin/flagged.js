// The flagged users: every user not in `none`, filtered by stage, sorted by last change, and
// searchable by uid or case reference (a case reference of any event is looked up in the API).

import { api } from './api.js';
import { h, clear, announce, errorBox } from './dom.js';
import * as fmt from './format.js';

// Kept while the tab is open, so coming back from a user's page keeps the filters.
const state = { stage: '', sort: 'newest', query: '' };

const CASE_REF = /^FU-[0-9A-F]{12}$/i;
const UID = /^[A-Za-z0-9_.:@-]{1,128}$/;

const userHref = (uid) => `#/user/${encodeURIComponent(uid)}`;

function stageBadge(stage) {
  return h('span', { class: `badge stage-${stage}` }, stage);
}

function matches(row, q) {
  if (!q) return true;
  const needle = q.toLowerCase();
  return row.uid.toLowerCase().includes(needle) || (row.last_case_ref || '').toLowerCase().includes(needle);
}

function sortRows(rows) {
  const t = (r) => (r.updated_at ? Date.parse(r.updated_at) : -Infinity);
  const out = [...rows].sort((a, b) => t(b) - t(a) || a.uid.localeCompare(b.uid));
  return state.sort === 'oldest' ? out.reverse() : out;
}

function untilText(row) {
  if (row.stage_until) return fmt.time(row.stage_until);
  return row.manual ? 'no expiry (manual)' : '—';
}

function table(rows) {
  return h('table', { class: 'data flagged', id: 'flagged-table' },
    h('caption', { class: 'visually-hidden' }, 'Flagged users'),
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'User'),
      h('th', { scope: 'col' }, 'Stage'),
      h('th', { scope: 'col', 'aria-sort': state.sort === 'newest' ? 'descending' : 'ascending' }, 'Last change'),
      h('th', { scope: 'col' }, 'Until'),
      h('th', { scope: 'col' }, 'Last case'),
      h('th', { scope: 'col' }, 'Last verdict'),
      h('th', { scope: 'col' }, 'Plan'),
      h('th', { scope: 'col' }, 'Notes'))),
    h('tbody', null, rows.map((r) => h('tr', { 'data-uid': r.uid },
      h('th', { scope: 'row' }, h('a', { href: userHref(r.uid), class: 'uid' }, r.uid)),
      h('td', null, stageBadge(r.stage)),
      h('td', null, fmt.time(r.updated_at)),
      h('td', null, untilText(r)),
      h('td', null, r.last_case_ref ? h('code', null, r.last_case_ref) : '—'),
      h('td', null, r.last_usage_type ? `${r.last_usage_type} · ${fmt.score(r.last_score)}` : '—'),
      h('td', null, r.plan || 'default'),
      h('td', null, [r.manual ? h('span', { class: 'tag' }, 'manual') : null, r.exempt ? h('span', { class: 'tag tag-exempt' }, 'exempt') : null])))));
}

export async function renderFlagged(view, ctx) {
  document.title = 'Flagged users · fairuse admin';
  const heading = h('h1', { id: 'flagged-title', tabindex: '-1' }, 'Flagged users');
  const results = h('div', { id: 'flagged-results' });
  const summary = h('p', { class: 'summary', id: 'flagged-summary', 'aria-live': 'polite' });
  const lookup = h('div', { id: 'flagged-lookup' });
  const switchedOff = h('p', { class: 'notice', hidden: true },
    'Fair use is switched off (enabled = false): nothing is metered and every decision allows.');
  let rows = [];

  const stageSelect = h('select', { id: 'filter-stage', name: 'stage' },
    h('option', { value: '' }, 'All stages'),
    fmt.STAGES.filter((st) => st !== 'none').map((st) => h('option', { value: st }, st)));
  stageSelect.value = state.stage;
  const sortSelect = h('select', { id: 'sort', name: 'sort' },
    h('option', { value: 'newest' }, 'Last change, newest first'),
    h('option', { value: 'oldest' }, 'Last change, oldest first'));
  sortSelect.value = state.sort;
  const search = h('input', {
    id: 'search', name: 'q', type: 'search', value: state.query, autocomplete: 'off', spellcheck: 'false',
    placeholder: 'uid or FU-…', 'aria-describedby': 'search-help',
  });

  function draw() {
    const visible = sortRows(rows.filter((r) => matches(r, state.query)));
    clear(results);
    clear(lookup);
    const stageText = state.stage ? `in ${state.stage}` : 'flagged';
    summary.textContent = rows.length === 0
      ? `No user is ${stageText}.`
      : `${rows.length} ${rows.length === 1 ? 'user' : 'users'} ${stageText}`
        + (state.query ? `, ${visible.length} matching “${state.query}”.` : '.')
        + (rows.length >= 200 ? ' (The API returns at most 200: narrow by stage to see more.)' : '');
    if (visible.length > 0) results.append(table(visible));
    const q = state.query.trim();
    if (q && CASE_REF.test(q) && !visible.length) {
      lookup.append(h('p', null, `No listed user has ${q.toUpperCase()} as their latest case. `,
        h('button', { type: 'submit', form: 'flagged-filters', class: 'secondary' }, `Look up case ${q.toUpperCase()}`)));
    } else if (q && UID.test(q) && !rows.some((r) => r.uid === q)) {
      lookup.append(h('p', null, `${q} is not in this list. `, h('a', { href: userHref(q) }, `Open user ${q} anyway`)));
    }
  }

  async function load() {
    clear(results);
    summary.textContent = 'Loading…';
    try {
      const data = await api.flagged(state.stage);
      if (!ctx.isCurrent()) return;
      rows = data.users || [];
      switchedOff.hidden = data.fair_use_enabled !== false;
      draw();
    } catch (err) {
      if (!ctx.isCurrent()) return;
      summary.textContent = '';
      results.append(errorBox(err, 'Could not load the flagged users'));
    }
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    const q = search.value.trim();
    state.query = q;
    if (CASE_REF.test(q)) {
      const ref = q.toUpperCase();
      const listed = rows.find((r) => (r.last_case_ref || '') === ref);
      if (listed) {
        location.hash = userHref(listed.uid);
        return;
      }
      try {
        const found = await api.caseRef(ref);
        announce(`Case ${ref} belongs to ${found.uid}.`);
        location.hash = userHref(found.uid);
      } catch (err) {
        clear(lookup);
        lookup.append(err.status === 404 ? h('p', { class: 'error', role: 'alert' }, `No case ${ref}.`) : errorBox(err, `Could not look up ${ref}`));
      }
      return;
    }
    const hits = rows.filter((r) => matches(r, q));
    if (hits.length === 1) location.hash = userHref(hits[0].uid);
    else draw();
  }

  stageSelect.addEventListener('change', () => { state.stage = stageSelect.value; load(); });
  sortSelect.addEventListener('change', () => { state.sort = sortSelect.value; draw(); });
  search.addEventListener('input', () => { state.query = search.value.trim(); draw(); });

  const form = h('form', { id: 'flagged-filters', class: 'filters', role: 'search', onsubmit: onSubmit },
    h('div', { class: 'field' }, h('label', { for: 'filter-stage' }, 'Stage'), stageSelect),
    h('div', { class: 'field' }, h('label', { for: 'sort' }, 'Sort'), sortSelect),
    h('div', { class: 'field grow' }, h('label', { for: 'search' }, 'Search by uid or case reference'), search,
      h('span', { id: 'search-help', class: 'help' }, 'Filters as you type; Enter opens the user, or looks a case reference up.')),
    h('div', { class: 'field' }, h('span', { class: 'label-spacer', 'aria-hidden': 'true' }, ' '),
      h('button', { type: 'button', class: 'secondary', onclick: load }, 'Refresh')));

  clear(view).append(h('section', { class: 'page', 'aria-labelledby': 'flagged-title' },
    heading,
    h('p', { class: 'lead' }, 'Users not in stage none, as the enforcement ladder or an admin left them.',
      ctx.canWrite ? '' : ' You are signed in as a viewer: you can look, not change.'),
    form, switchedOff, summary, lookup, results));
  heading.focus();
  await load();
}
