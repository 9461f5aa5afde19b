// One user's page: the speech chart, the windows against their caps, the STT budget, the
// decision, the operator actions, the appeals and the stage timeline with every event (each
// verdict with its score, type, recipes and the conversations its evidence cites).

import { api } from './api.js';
import { h, clear, errorBox } from './dom.js';
import * as fmt from './format.js';
import { speechChart } from './chart.js';
import * as actions from './actions.js';

const APPEAL_OF = /^appeal of (FU-[0-9A-F]{12}):\s*/;

const badge = (stage, extra) => h('span', { class: `badge stage-${stage}` }, extra ? `${stage} ${extra}` : stage);

function section(id, title, ...children) {
  return h('section', { class: 'card', id, 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title` }, title), children);
}

function pairs(rows) {
  return h('dl', { class: 'pairs' }, rows.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v)]));
}

/** A horizontal bar: `value` of `max`, with the text beside it (the bar itself is decoration). */
function bar(value, max, over) {
  const fill = h('span', { class: `fill${over ? ' over' : ''}` });
  fill.style.width = `${Math.min(100, max ? (value / max) * 100 : 0)}%`;
  return h('span', { class: 'bar', 'aria-hidden': 'true' }, fill);
}

function windowsSection(data) {
  const caps = data.caps || {};
  const windows = data.windows || {};
  const rows = Object.keys(windows).map((key) => {
    const total = windows[key];
    const cap = caps[key];
    const over = typeof cap === 'number' && total > cap;
    return h('tr', { class: over ? 'over' : '' },
      h('th', { scope: 'row' }, fmt.windowLabel(key)),
      h('td', null, fmt.duration(total)),
      h('td', null, typeof cap === 'number' ? fmt.duration(cap) : 'none'),
      h('td', null, typeof cap === 'number' ? fmt.percent(total, cap) : '—', bar(total, cap, over)),
      h('td', null, over ? h('strong', { class: 'over-text' }, 'over') : 'under'));
  });
  const daily = windows.daily_ms;
  return section('windows', 'Windows and caps',
    h('table', { class: 'data windows' },
      h('caption', { class: 'visually-hidden' }, 'Speech in each trailing window against the plan\'s cap'),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Window'), h('th', { scope: 'col' }, 'Speech'),
        h('th', { scope: 'col' }, 'Cap'), h('th', { scope: 'col' }, 'Of cap'), h('th', { scope: 'col' }, 'State'))),
      h('tbody', null, rows)),
    h('p', { class: 'muted' },
      `Plan ${data.decision?.plan || data.state?.plan || 'default'}. Caps count realtime + sync, fresh. `
      + (data.ceiling_ms
        ? `Hard ceiling: ${fmt.duration(data.ceiling_ms)} per trailing 24 h for every plan`
          + (typeof daily === 'number' ? ` (${fmt.percent(daily, data.ceiling_ms)} used).` : '.')
        : 'No hard ceiling (ceiling.limit = 0).')));
}

function budgetSection(data) {
  const b = data.budget;
  const d = data.decision || {};
  const decisionRows = [
    ['Effective stage', badge(d.effective_stage || 'none')],
    ['STT allowed', d.stt_allowed ? 'yes' : 'no'],
    ['STT model tier', d.stt_model_tier || '—'],
    d.retry_after_s ? ['Retry after', `${d.retry_after_s} s`] : null,
    d.shadow ? ['Mode', 'shadow (nothing enforced)'] : null,
  ];
  const reasons = (d.reasons || []).length
    ? h('ul', { class: 'reasons' }, d.reasons.map((r) => h('li', null, r)))
    : h('p', { class: 'muted' }, 'No cap is triggered.');
  if (!b) {
    return section('budget', 'STT budget and decision',
      h('p', null, `No STT budget applies at stage ${d.effective_stage || 'none'}: budgets apply while throttled or restricted.`),
      pairs(decisionRows), reasons);
  }
  return section('budget', 'STT budget and decision',
    h('p', { class: 'big' }, `${fmt.duration(b.used_ms)} of ${fmt.duration(b.daily_limit_ms)} used today`,
      bar(b.used_ms, b.daily_limit_ms, b.exhausted)),
    pairs([
      ['Remaining', fmt.duration(b.remaining_ms)],
      ['Exhausted', b.exhausted ? h('strong', { class: 'over-text' }, 'yes') : 'no'],
      ['Resets', fmt.time(b.resets_at)],
    ]),
    pairs(decisionRows), reasons);
}

function verdictBlock(ev) {
  const v = ev.verdict;
  const evidence = v.evidence || [];
  return h('div', { class: 'verdict' },
    h('dl', { class: 'pairs inline' },
      h('dt', null, 'Score'), h('dd', { class: 'score' }, fmt.score(v.misuse_score)),
      h('dt', null, 'Type'), h('dd', null, v.usage_type),
      h('dt', null, 'Confidence'), h('dd', null, fmt.score(v.confidence)),
      h('dt', null, 'Recipes'), h('dd', null, (v.recipes || []).length ? v.recipes.map((r) => h('span', { class: 'tag' }, r)) : 'none'),
      h('dt', null, 'Model'), h('dd', null, `${v.model}${v.prompt_version ? ` (${v.prompt_version})` : ''}`)),
    ev.evidence_redacted_at
      ? h('p', { class: 'muted' }, `Evidence text redacted on ${fmt.time(ev.evidence_redacted_at)} (retention).`)
      : evidence.length === 0
        ? h('p', { class: 'muted' }, 'No evidence cited.')
        : h('table', { class: 'data evidence' },
          h('caption', null, `Evidence: ${evidence.length} conversation${evidence.length === 1 ? '' : 's'} cited`),
          h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Conversation'), h('th', { scope: 'col' }, 'Title'), h('th', { scope: 'col' }, 'Why it was cited'))),
          h('tbody', null, evidence.map((e) => h('tr', null,
            h('td', null, h('code', null, e.conversation_id)),
            h('th', { scope: 'row' }, e.title || '(untitled)'),
            h('td', null, e.reason))))));
}

function triggerBlock(t) {
  if (!t || !(t.windows || []).length) return null;
  return h('details', { class: 'trigger' },
    h('summary', null, `Trigger: ${t.reason || 'caps'}${t.plan ? `, plan ${t.plan}` : ''}`),
    h('table', { class: 'data compact' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Window'), h('th', { scope: 'col' }, 'Total'), h('th', { scope: 'col' }, 'Cap'), h('th', { scope: 'col' }, 'Over'))),
      h('tbody', null, t.windows.map((w) => h('tr', null,
        h('th', { scope: 'row' }, fmt.windowLabel(w.window)), h('td', null, fmt.duration(w.total_ms)),
        h('td', null, w.cap_ms === null || w.cap_ms === undefined ? 'none' : fmt.duration(w.cap_ms)), h('td', null, w.over ? 'yes' : 'no'))))));
}

function eventItem(ev, ctx, onResolve) {
  const changed = ev.previous_stage !== ev.new_stage;
  const appeal = ev.kind === 'appeal' ? (ev.notes || '').match(APPEAL_OF) : null;
  const res = ev.resolution;
  return h('li', { class: `event kind-${ev.kind} to-${ev.new_stage}`, id: `event-${ev.event_id}`, 'data-event-id': ev.event_id, 'data-kind': ev.kind, tabindex: '-1' },
    h('div', { class: 'event-head' },
      h('time', { datetime: ev.created_at }, fmt.time(ev.created_at)),
      h('strong', { class: 'event-kind' }, fmt.kind(ev.kind)),
      changed ? h('span', { class: 'transition' }, badge(ev.previous_stage), ' → ', badge(ev.new_stage)) : h('span', { class: 'muted' }, `stage ${ev.new_stage}`),
      h('span', { class: 'muted' }, `by ${ev.actor}`),
      h('code', { class: 'case' }, ev.case_ref),
      ev.shadow ? h('span', { class: 'tag' }, 'shadow') : null),
    ev.stage_until && changed ? h('p', { class: 'muted' }, `Until ${fmt.time(ev.stage_until)}.`) : null,
    appeal
      ? h('blockquote', { class: 'appeal-text' }, h('span', { class: 'muted' }, `Appeal of ${appeal[1]}: `), ev.notes.slice(appeal[0].length))
      : ev.notes ? h('p', { class: 'notes' }, ev.kind === 'admin_resolve' ? ev.notes : `Reason: ${ev.notes}`) : null,
    ev.budget ? h('p', { class: 'muted' }, `Budget: ${fmt.duration(ev.budget.used_ms)} of ${fmt.duration(ev.budget.limit_ms ?? ev.budget.daily_limit_ms)}.`) : null,
    ev.verdict ? verdictBlock(ev) : null,
    triggerBlock(ev.trigger_detail || ev.trigger),
    res
      ? h('p', { class: `resolution outcome-${res.outcome}` },
        h('strong', null, res.outcome === 'overturned' ? 'Overturned' : 'Upheld'),
        ` by ${res.resolved_by} on ${fmt.time(res.resolved_at)}`, res.notes ? `: ${res.notes}` : '.')
      : null,
    ev.verdict && ctx.canWrite
      ? h('div', { class: 'event-actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => onResolve(ev, 'upheld') }, res ? 'Resolve again: uphold…' : 'Uphold…'),
        h('button', { type: 'button', class: 'secondary', onclick: () => onResolve(ev, 'overturned') }, res ? 'Resolve again: overturn…' : 'Overturn…'))
      : null);
}

function appealsSection(events) {
  const appeals = events.filter((e) => e.kind === 'appeal');
  const byCase = new Map(events.filter((e) => e.verdict || e.kind !== 'appeal').map((e) => [e.case_ref, e]));
  const body = appeals.length === 0
    ? h('p', { class: 'muted' }, 'No appeal among the latest 50 events.')
    : h('ul', { class: 'appeals' }, appeals.map((a) => {
      const m = (a.notes || '').match(APPEAL_OF);
      const target = m ? byCase.get(m[1]) : null;
      const status = !target
        ? 'the appealed case is not among the latest 50 events'
        : target.resolution
          ? `${target.resolution.outcome} by ${target.resolution.resolved_by} on ${fmt.time(target.resolution.resolved_at)}`
          : 'not resolved yet';
      return h('li', { class: 'appeal' },
        h('p', null, h('strong', null, m ? `Appeal of ${m[1]}` : 'Appeal'), ` · ${fmt.time(a.created_at)} · `,
          h('span', { class: target && !target.resolution ? 'open' : 'muted' }, status)),
        h('blockquote', { class: 'appeal-text' }, m ? a.notes.slice(m[0].length) : a.notes || ''),
        target ? h('button', {
          type: 'button', class: 'link', onclick: () => {
            const el = document.getElementById(`event-${target.event_id}`);
            if (el) { el.scrollIntoView({ block: 'center' }); el.focus(); }
          },
        }, `Show ${m[1]} in the timeline`) : null);
    }));
  return section('appeals', `Appeals (${appeals.length})`, body);
}

export async function renderUser(view, ctx, uid) {
  document.title = `${uid} · fairuse admin`;
  const back = h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← Flagged users'));
  clear(view).append(back, h('p', { class: 'muted', role: 'status' }, `Loading ${uid}…`));
  let data;
  let exempt;
  try {
    [data, exempt] = await Promise.all([api.user(uid), api.exempt(uid).catch(() => null)]);
  } catch (err) {
    if (!ctx.isCurrent()) return;
    clear(view).append(back, h('h1', null, uid), errorBox(err, `Could not load ${uid}`));
    return;
  }
  if (!ctx.isCurrent()) return;
  draw(view, ctx, uid, data, exempt, null);
}

async function refresh(view, ctx, uid, audit) {
  try {
    const [data, exempt] = await Promise.all([api.user(uid), api.exempt(uid).catch(() => null)]);
    if (!ctx.isCurrent()) return;
    draw(view, ctx, uid, data, exempt, audit);
  } catch (err) {
    view.append(errorBox(err, `Could not reload ${uid}`));
  }
}

function draw(view, ctx, uid, data, exempt, lastAudit) {
  const st = data.state || {};
  const events = data.events || [];
  const auditSlot = h('div', { id: 'audit-slot', 'aria-live': 'polite' });

  const done = (what) => (res) => {
    if (!res) return;
    refresh(view, ctx, uid, { what, audit: res.audit });
  };

  const heading = h('h1', { id: 'user-title', tabindex: '-1' }, h('span', { class: 'muted' }, 'User '), h('span', { class: 'uid' }, uid));
  const status = h('p', { class: 'status-line' },
    badge(st.stage || 'none'),
    st.manual ? h('span', { class: 'tag' }, 'manual') : null,
    exempt?.exempt ? h('span', { class: 'tag tag-exempt' }, exempt.in_config && !exempt.dynamic ? 'exempt (config)' : 'exempt') : null,
    st.stage_since ? ` since ${fmt.time(st.stage_since)}` : '',
    st.stage_until ? `, until ${fmt.time(st.stage_until)}` : (st.stage && st.stage !== 'none' && st.manual ? ', no expiry' : ''),
    st.last_case_ref ? h('span', null, ' · latest case ', h('code', null, st.last_case_ref)) : null,
    st.last_usage_type ? ` · last verdict ${st.last_usage_type} ${fmt.score(st.last_score)}` : '',
    st.period_start ? ` · counting since ${fmt.time(st.period_start)}` : '');

  let actionsSection;
  if (ctx.canWrite) {
    const isExempt = Boolean(exempt?.dynamic);
    actionsSection = section('actions', 'Actions',
      h('div', { class: 'action-buttons' },
        h('button', { type: 'button', class: 'danger', id: 'action-reset', onclick: () => actions.resetUser(uid, st.stage || 'none').then(done('Reset')) }, 'Reset…'),
        h('button', { type: 'button', class: 'secondary', id: 'action-set-stage', onclick: () => actions.setStage(uid, st.stage || 'none').then(done('Set stage')) }, 'Set stage…'),
        h('button', {
          type: 'button', class: 'secondary', id: 'action-exempt',
          onclick: () => actions.setExempt(uid, !isExempt, exempt?.in_config).then(done(isExempt ? 'Exemption removed' : 'Exempted')),
        }, isExempt ? 'Remove exemption…' : 'Exempt…')),
      h('p', { class: 'muted' }, 'Each action asks for confirmation and shows the audit entry it wrote.'),
      auditSlot);
  } else {
    actionsSection = section('actions', 'Actions',
      h('p', null, `Signed in as a viewer (${ctx.me.name}): actions that change a user are for operators.`));
  }

  const onResolve = (ev, outcome) => actions.resolveEvent(uid, ev, outcome).then(done(`Resolved ${ev.case_ref}`));

  const chart = section('speech', 'Speech, last 7 days',
    speechChart({ usage: data.usage?.lanes || {}, caps: data.caps || {}, ceilingMs: data.ceiling_ms, nowMs: Date.now() }));

  const timeline = section('timeline', `Stage timeline (${events.length} event${events.length === 1 ? '' : 's'}, newest first)`,
    events.length === 0
      ? h('p', { class: 'muted' }, 'No events: this user was never classified or changed by an admin.')
      : h('ol', { class: 'timeline', reversed: true }, events.map((ev) => eventItem(ev, ctx, onResolve))),
    events.length >= 50 ? h('p', { class: 'muted' }, 'The API returns the newest 50 events.') : null);

  clear(view).append(h('div', { class: 'page user-page' },
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, '← Flagged users')),
    heading, status,
    h('div', { class: 'grid' },
      h('div', { class: 'col-main' }, chart, timeline),
      h('div', { class: 'col-side' }, windowsSection(data), budgetSection(data), actionsSection, appealsSection(events)))));

  if (lastAudit) {
    actions.showAudit(auditSlot, lastAudit.what, lastAudit.audit);
    const card = auditSlot.querySelector('#audit-result');
    card.scrollIntoView({ block: 'nearest' });
    card.focus();
  } else {
    heading.focus();
  }
}
