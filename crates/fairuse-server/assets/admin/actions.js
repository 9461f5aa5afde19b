// Operator actions: each asks for confirmation in a modal dialog, calls the API, and shows the
// audit entry (the event) the service wrote. Viewers never see these; the API refuses them too.

import { api } from './api.js';
import { h, clear, announce, uniqueId } from './dom.js';
import * as fmt from './format.js';

/**
 * A modal confirmation. `fields` are form controls (already labelled); `run(form)` performs the
 * action and returns the API's answer. Resolves with that answer, or null when cancelled.
 */
export function confirmAction({ title, body, fields = [], confirmLabel, danger = false, run }) {
  return new Promise((resolve) => {
    const titleId = uniqueId('dlg-title');
    const descId = uniqueId('dlg-desc');
    const error = h('p', { class: 'error', role: 'alert' });
    const confirm = h('button', { type: 'submit', class: danger ? 'danger' : 'primary', value: 'confirm' }, confirmLabel);
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const form = h('form', { method: 'dialog', class: 'dialog-form' },
      h('h2', { id: titleId }, title),
      h('p', { id: descId }, body),
      fields,
      error,
      h('div', { class: 'buttons' }, cancel, confirm));
    const dialog = h('dialog', { 'aria-labelledby': titleId, 'aria-describedby': descId, class: 'confirm' }, form);
    let result = null;
    const finish = () => {
      dialog.remove();
      resolve(result);
    };
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', finish);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!form.reportValidity()) return;
      confirm.disabled = true;
      cancel.disabled = true;
      error.textContent = '';
      try {
        result = await run(form);
        dialog.close();
      } catch (err) {
        error.textContent = err.status === 403
          ? `Refused: ${err.message} (only operators may do this).`
          : `Failed: ${err.message}`;
        confirm.disabled = false;
        cancel.disabled = false;
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = dialog.querySelector('input, select, textarea');
    (first || confirm).focus();
  });
}

function field(label, control, help) {
  const id = control.id || uniqueId('f');
  control.id = id;
  const helpId = help ? `${id}-help` : null;
  if (helpId) control.setAttribute('aria-describedby', helpId);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control,
    help ? h('span', { class: 'help', id: helpId }, help) : null);
}

const textArea = (name, required = true) => h('textarea', { name, rows: '3', required, maxlength: '2000' });

/** The audit entry an action wrote, as a small card. */
export function auditCard(what, audit) {
  const rows = [
    ['Kind', fmt.kind(audit.kind)],
    ['Case', h('code', null, audit.case_ref)],
    ['By', audit.actor],
    ['At', fmt.time(audit.created_at)],
    ['Stage', audit.previous_stage === audit.new_stage ? audit.new_stage : `${audit.previous_stage} → ${audit.new_stage}`],
  ];
  if (audit.stage_until) rows.push(['Until', fmt.time(audit.stage_until)]);
  if (audit.notes) rows.push(['Notes', audit.notes]);
  rows.push(['Event id', h('code', null, audit.event_id)]);
  return h('div', { class: 'audit card', id: 'audit-result', tabindex: '-1' },
    h('h3', null, `${what}: audit entry written`),
    h('dl', { class: 'pairs' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])));
}

/** Shows an action's audit entry in `slot` and announces it. */
export function showAudit(slot, what, audit) {
  clear(slot).append(auditCard(what, audit));
  announce(`${what} done. Audit entry ${audit.case_ref} written by ${audit.actor}.`);
}

export function resolveEvent(uid, event, preset) {
  const outcome = (value, label) => h('label', { class: 'radio' },
    h('input', { type: 'radio', name: 'outcome', value, required: true, checked: preset === value }), label);
  return confirmAction({
    title: `Resolve ${event.case_ref}`,
    body: `Record a review of this ${event.verdict?.usage_type || ''} verdict (score ${fmt.score(event.verdict?.misuse_score)}) of ${uid}. `
      + 'An overturned verdict no longer counts toward escalation; the stage itself is not changed (use Reset or Set stage for that).',
    fields: [
      h('fieldset', { class: 'field' }, h('legend', null, 'Outcome'),
        outcome('upheld', 'Upheld: the verdict was right'),
        outcome('overturned', 'Overturned: the verdict was wrong')),
      field('Notes', textArea('notes'), 'Why; kept with the event and shown to other admins.'),
    ],
    confirmLabel: 'Resolve',
    run: (form) => {
      const fd = new FormData(form);
      return api.resolve(uid, event.event_id, fd.get('outcome'), fd.get('notes'));
    },
  });
}

export function resetUser(uid, stage) {
  return confirmAction({
    title: `Reset ${uid}`,
    body: `Back to none from ${stage}: clears timers and starts a new counting period (earlier verdicts no longer count toward escalation).`,
    fields: [field('Reason', textArea('reason'), 'Recorded in the audit entry.')],
    confirmLabel: 'Reset',
    danger: true,
    run: (form) => api.reset(uid, new FormData(form).get('reason')),
  });
}

/** `2026-12-01T12:00` (a datetime-local value, read as UTC) → RFC 3339, or null. */
function utcFromLocalInput(v) {
  if (!v) return null;
  const iso = `${v.length === 16 ? `${v}:00` : v}Z`;
  return Number.isNaN(Date.parse(iso)) ? null : iso;
}

export function setStage(uid, current) {
  const select = h('select', { name: 'stage', required: true }, fmt.STAGES.map((st) => h('option', { value: st }, st)));
  select.value = current;
  const until = h('input', { type: 'datetime-local', name: 'until', step: '60' });
  return confirmAction({
    title: `Set the stage of ${uid}`,
    body: `Currently ${current}. A stage set here is marked manual: with no expiry, timers do not lower it (escalation may still raise it).`,
    fields: [
      field('Stage', select),
      field('Expires (UTC, optional)', until, 'Leave empty for no expiry. The time is read as UTC.'),
      field('Reason', textArea('reason'), 'Recorded in the audit entry.'),
    ],
    confirmLabel: 'Set stage',
    run: (form) => {
      const fd = new FormData(form);
      const iso = utcFromLocalInput(fd.get('until'));
      if (fd.get('until') && !iso) throw new Error('the expiry is not a valid date and time');
      if (iso && Date.parse(iso) <= Date.now()) throw new Error('the expiry must be in the future');
      return api.setStage(uid, fd.get('stage'), iso, fd.get('reason'));
    },
  });
}

export function setExempt(uid, exempt, inConfig) {
  return confirmAction({
    title: exempt ? `Exempt ${uid}` : `Remove the exemption of ${uid}`,
    body: exempt
      ? 'An exempt user is still metered but never capped or budgeted, whatever their stage.'
      : `Caps and budgets apply to ${uid} again.${inConfig ? ' The user is also exempt in the configuration, which this does not change.' : ''}`,
    confirmLabel: exempt ? 'Exempt' : 'Remove exemption',
    danger: !exempt,
    run: () => api.setExempt(uid, exempt),
  });
}
