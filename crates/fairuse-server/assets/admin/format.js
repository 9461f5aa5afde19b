// Formatting: durations, times (always UTC, as the API and the STT budget's day are), labels.

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  const neg = ms < 0;
  let rest = Math.round(Math.abs(ms) / 1000);
  const hrs = Math.floor(rest / 3600);
  rest -= hrs * 3600;
  const min = Math.floor(rest / 60);
  const sec = rest - min * 60;
  let out;
  if (hrs > 0) out = min > 0 ? `${hrs} h ${min} min` : `${hrs} h`;
  else if (min > 0) out = sec > 0 && min < 10 ? `${min} min ${sec} s` : `${min} min`;
  else out = `${sec} s`;
  return neg ? `-${out}` : out;
}

export function hours(ms, digits = 1) {
  return `${(ms / 3_600_000).toFixed(digits)} h`;
}

export function percent(part, whole) {
  if (!whole) return '—';
  return `${Math.round((part / whole) * 100)}%`;
}

const pad = (n) => String(n).padStart(2, '0');
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `2026-11-27 23:51 UTC` */
export function time(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}

/** `Fri 27 Nov` */
export function day(ms) {
  const d = new Date(ms);
  return `${DAYS[d.getUTCDay()]} ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`;
}

/** `Fri 27 Nov 14:00` */
export function dayHour(ms) {
  const d = new Date(ms);
  return `${day(ms)} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

export function score(x) {
  return typeof x === 'number' ? x.toFixed(2) : '—';
}

const KINDS = {
  classified: 'Classified',
  stage_changed: 'Stage changed',
  budget_exhausted: 'STT budget exhausted',
  timer_expired: 'Timer expired',
  admin_reset: 'Reset by an admin',
  admin_set_stage: 'Stage set by an admin',
  admin_resolve: 'Verdict resolved',
  admin_exempt: 'Exempted',
  admin_unexempt: 'Exemption removed',
  appeal: 'Appeal',
};
export const kind = (k) => KINDS[k] || String(k);

const WINDOWS = { daily: '24 h', three_day: '72 h', weekly: '168 h' };
/** A window's label from its name (`daily`) or its key in the API (`daily_ms`). */
export const windowLabel = (name) => {
  const n = String(name).replace(/_ms$/, '');
  return WINDOWS[n] || n.replace(/_/g, ' ');
};

export const LANES = [
  { id: 'realtime', label: 'realtime', counted: true },
  { id: 'sync_fresh', label: 'sync, fresh', counted: true },
  { id: 'sync_backfill', label: 'sync, backfill', counted: false },
  { id: 'custom_stt', label: 'custom STT', counted: false },
];

export const STAGES = ['none', 'warning', 'throttle', 'restrict'];
