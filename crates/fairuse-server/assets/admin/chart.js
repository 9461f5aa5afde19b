// The speech chart of a user's page, drawn as inline SVG (no library).
//
// Two panels share one time axis (the last 7 days, by UTC hour):
//  1. speech per hour, bars stacked by lane (every lane is shown; only realtime and sync_fresh
//     count toward caps);
//  2. the trailing 24 h and 72 h totals of the counted lanes at the end of each hour, with the
//     plan's caps for those windows and the hard daily ceiling drawn as horizontal lines.
// Caps are limits on trailing windows, not on hours, so they are drawn against the window
// totals (panel 2) rather than scaled onto the hourly bars, which would misstate them.
//
// Keyboard: the chart is focusable; Left/Right move one hour, PageUp/PageDown one day,
// Home/End to the first/last hour; the hour under the cursor is read out in a live region.
// The same numbers are in a table under "Show the numbers".

import { h, s, uniqueId } from './dom.js';
import * as fmt from './format.js';

const MIN_MS = 60_000;
const HOUR_MIN = 60;
const DAY_MIN = 1440;

const W = 960;
const LEFT = 64;
const RIGHT = 12;
const PLOT_W = W - LEFT - RIGHT;
const P1_TOP = 28;
const P1_H = 150;
const P2_TOP = P1_TOP + P1_H + 56;
const P2_H = 130;
const H = P2_TOP + P2_H + 30;

/** An axis from 0: the smallest step of `steps` that needs at most 5 intervals to reach `max`. */
function axis(max, steps) {
  const step = steps.find((st) => max / st <= 5) || steps[steps.length - 1] * Math.ceil(max / 5 / steps[steps.length - 1]);
  const top = Math.max(step, Math.ceil(max / step - 1e-9) * step);
  const ticks = [];
  for (let v = 0; v <= top + 1e-9; v += step) ticks.push(v);
  return { top, ticks };
}
const MINUTE_STEPS = [2, 5, 10, 15, 30, 60, 120, 240, 480, 960];
const HOUR_STEPS = [0.5, 1, 2, 2.5, 5, 10, 20, 25, 50, 100];

/** Hours of the series and the totals the chart draws; exported for tests and the table. */
export function series(usage, caps, nowMs) {
  let nowMinute = Math.floor(nowMs / MIN_MS);
  for (const lane of fmt.LANES) {
    for (const [m] of usage[lane.id] || []) nowMinute = Math.max(nowMinute, m);
  }
  const fromMinute = nowMinute - 7 * DAY_MIN + 1;
  const firstHour = Math.floor(fromMinute / HOUR_MIN);
  const lastHour = Math.floor(nowMinute / HOUR_MIN);
  const n = lastHour - firstHour + 1;
  const lanes = {};
  const counted = new Float64Array(nowMinute - fromMinute + 1);
  for (const lane of fmt.LANES) {
    const bins = new Array(n).fill(0);
    for (const [m, ms] of usage[lane.id] || []) {
      if (m < fromMinute || m > nowMinute) continue;
      bins[Math.floor(m / HOUR_MIN) - firstHour] += ms;
      if (lane.counted) counted[m - fromMinute] += ms;
    }
    lanes[lane.id] = bins;
  }
  const prefix = new Float64Array(counted.length + 1);
  for (let i = 0; i < counted.length; i += 1) prefix[i + 1] = prefix[i] + counted[i];
  // Sum of counted minutes in (end - window, end], or null when the series does not reach back
  // far enough for the whole window (the API returns 7 days of minutes).
  const trailing = (windowMin, endMinute) => {
    if (endMinute - windowMin < fromMinute - 1) return null;
    const hi = endMinute - fromMinute + 1;
    const lo = Math.max(0, endMinute - windowMin - fromMinute + 1);
    return prefix[hi] - prefix[lo];
  };
  const hoursOut = [];
  for (let i = 0; i < n; i += 1) {
    const startMinute = (firstHour + i) * HOUR_MIN;
    const endMinute = Math.min(startMinute + HOUR_MIN - 1, nowMinute);
    const byLane = {};
    let total = 0;
    let countedTotal = 0;
    for (const lane of fmt.LANES) {
      byLane[lane.id] = lanes[lane.id][i];
      total += lanes[lane.id][i];
      if (lane.counted) countedTotal += lanes[lane.id][i];
    }
    hoursOut.push({
      startMs: startMinute * MIN_MS,
      endMs: (endMinute + 1) * MIN_MS,
      partial: endMinute < startMinute + HOUR_MIN - 1,
      byLane,
      total,
      counted: countedTotal,
      t24: caps.daily_ms !== undefined ? trailing(DAY_MIN, endMinute) : null,
      t72: caps.three_day_ms !== undefined ? trailing(3 * DAY_MIN, endMinute) : null,
    });
  }
  return { hours: hoursOut, firstHour, n, nowMinute };
}

function hourText(hr, caps) {
  const parts = fmt.LANES.filter((l) => hr.byLane[l.id] > 0).map((l) => `${l.label} ${fmt.duration(hr.byLane[l.id])}`);
  const lanes = parts.length ? parts.join(', ') : 'no speech';
  let text = `${fmt.dayHour(hr.startMs)}–${fmt.dayHour(hr.endMs).slice(-5)} UTC${hr.partial ? ' (so far)' : ''}: ${lanes}.`;
  if (hr.t24 !== null) {
    text += ` Trailing 24 h: ${fmt.duration(hr.t24)}`;
    if (caps.daily_ms) text += ` of the ${fmt.duration(caps.daily_ms)} cap${hr.t24 > caps.daily_ms ? ' (over)' : ''}`;
    text += '.';
  }
  if (hr.t72 !== null) {
    text += ` Trailing 72 h: ${fmt.duration(hr.t72)}`;
    if (caps.three_day_ms) text += ` of the ${fmt.duration(caps.three_day_ms)} cap${hr.t72 > caps.three_day_ms ? ' (over)' : ''}`;
    text += '.';
  }
  return text;
}

function summaryText(data, caps, ceilingMs) {
  const { hours } = data;
  const total = hours.reduce((a, x) => a + x.total, 0);
  const counted = hours.reduce((a, x) => a + x.counted, 0);
  if (total === 0) return 'No speech was metered in the last 7 days.';
  const peak = hours.reduce((a, x) => (x.total > a.total ? x : a), hours[0]);
  let text = `Speech per hour over the last 7 days: ${fmt.duration(total)} in all, ${fmt.duration(counted)} of it in the lanes that count toward caps. `
    + `Busiest hour: ${fmt.dayHour(peak.startMs)} UTC with ${fmt.duration(peak.total)}.`;
  const with24 = hours.filter((x) => x.t24 !== null);
  if (with24.length && caps.daily_ms) {
    const over = with24.filter((x) => x.t24 > caps.daily_ms).length;
    const max = with24.reduce((a, x) => (x.t24 > a.t24 ? x : a), with24[0]);
    text += ` The trailing 24 h total peaked at ${fmt.duration(max.t24)} (${fmt.dayHour(max.endMs)} UTC) against a daily cap of ${fmt.duration(caps.daily_ms)}`
      + (ceilingMs ? ` and a ceiling of ${fmt.duration(ceilingMs)}` : ' and no ceiling') + `; it was over the cap at the end of ${over} of ${with24.length} hours.`;
  }
  return text;
}

/** The chart as a <figure>. */
export function speechChart({ usage, caps, ceilingMs, nowMs }) {
  const data = series(usage || {}, caps || {}, nowMs);
  const { hours, n } = data;
  const slot = PLOT_W / n;
  const x = (i) => LEFT + i * slot;

  // Panel 1 scale: minutes per hour.
  const maxHour = Math.max(...hours.map((hr) => hr.total), 0);
  const ax1 = axis(Math.max(maxHour / MIN_MS, 10), MINUTE_STEPS);
  const y1Max = ax1.top;
  const y1 = (ms) => P1_TOP + P1_H - (ms / MIN_MS / y1Max) * P1_H;

  // Panel 2 scale: hours, so that the caps and the lines fit; the ceiling only if it is close.
  const lineVals = hours.flatMap((hr) => [hr.t24, hr.t72]).filter((v) => v !== null);
  const capVals = [caps.daily_ms, caps.three_day_ms].filter((v) => typeof v === 'number');
  const top2 = Math.max(...lineVals, ...capVals, MIN_MS * 60);
  const ceilingInRange = typeof ceilingMs === 'number' && ceilingMs > 0 && ceilingMs <= top2 * 1.6;
  const ax2 = axis(Math.max(top2, ceilingInRange ? ceilingMs : 0) * 1.08 / 3_600_000, HOUR_STEPS);
  const y2Max = ax2.top;
  const y2 = (ms) => P2_TOP + P2_H - (ms / 3_600_000 / y2Max) * P2_H;

  const titleId = uniqueId('chart-title');
  const descId = uniqueId('chart-desc');
  const summary = summaryText(data, caps, ceilingMs);
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', tabindex: '0', id: 'speech-chart',
    'aria-labelledby': titleId, 'aria-describedby': descId, preserveAspectRatio: 'xMidYMid meet',
  });
  svg.append(s('title', { id: titleId }, 'Speech over the last 7 days, by hour (UTC)'));
  svg.append(s('desc', { id: descId }, `${summary} Use the left and right arrow keys to read each hour.`));

  // Day gridlines and labels, shared by both panels.
  const grid = s('g', { class: 'grid', 'aria-hidden': 'true' });
  for (let i = 0; i < n; i += 1) {
    const d = new Date(hours[i].startMs);
    if (d.getUTCHours() !== 0) continue;
    grid.append(s('line', { x1: x(i), x2: x(i), y1: P1_TOP, y2: P1_TOP + P1_H, class: 'day-line' }));
    grid.append(s('line', { x1: x(i), x2: x(i), y1: P2_TOP, y2: P2_TOP + P2_H, class: 'day-line' }));
    if (x(i) + 60 < W) {
      grid.append(s('text', { x: x(i) + 3, y: P1_TOP + P1_H + 16, class: 'axis-label' }, fmt.day(hours[i].startMs)));
      grid.append(s('text', { x: x(i) + 3, y: P2_TOP + P2_H + 16, class: 'axis-label' }, fmt.day(hours[i].startMs)));
    }
  }
  for (const v of ax1.ticks) {
    grid.append(s('line', { x1: LEFT, x2: W - RIGHT, y1: y1(v * MIN_MS), y2: y1(v * MIN_MS), class: v === 0 ? 'axis' : 'tick-line' }));
    grid.append(s('text', { x: LEFT - 6, y: y1(v * MIN_MS) + 4, class: 'axis-label end' }, `${v} min`));
  }
  for (const v of ax2.ticks) {
    grid.append(s('line', { x1: LEFT, x2: W - RIGHT, y1: y2(v * 3_600_000), y2: y2(v * 3_600_000), class: v === 0 ? 'axis' : 'tick-line' }));
    grid.append(s('text', { x: LEFT - 6, y: y2(v * 3_600_000) + 4, class: 'axis-label end' }, `${v} h`));
  }
  svg.append(grid);
  svg.append(s('text', { x: LEFT, y: P1_TOP - 10, class: 'panel-title' }, 'Speech per hour, stacked by lane (minutes)'));
  svg.append(s('text', { x: LEFT, y: P2_TOP - 10, class: 'panel-title' }, 'Trailing window totals of realtime + sync, fresh, against the caps (hours)'));

  // Panel 1: stacked bars.
  const bars = s('g', { class: 'bars', 'aria-hidden': 'true' });
  const gap = slot > 3 ? 1 : 0;
  hours.forEach((hr, i) => {
    let acc = 0;
    for (const lane of fmt.LANES) {
      const v = hr.byLane[lane.id];
      if (!v) continue;
      const yTop = y1(acc + v);
      const yBottom = y1(acc);
      bars.append(s('rect', {
        x: x(i) + gap / 2, width: Math.max(slot - gap, 0.5), y: yTop, height: Math.max(yBottom - yTop, 0.5),
        class: `lane-${lane.id}`, 'data-lane': lane.id,
      }));
      acc += v;
    }
  });
  svg.append(bars);
  if (y1Max > 60) {
    svg.append(s('line', { x1: LEFT, x2: W - RIGHT, y1: y1(60 * MIN_MS), y2: y1(60 * MIN_MS), class: 'ref-line', 'aria-hidden': 'true' }));
    svg.append(s('text', { x: LEFT + 6, y: y1(60 * MIN_MS) - 4, class: 'axis-label' }, '60 min: one stream all hour'));
  }

  // Panel 2: cap lines, then the trailing totals.
  const lines = s('g', { class: 'lines', 'aria-hidden': 'true' });
  const capLine = (ms, cls, label) => {
    lines.append(s('line', { x1: LEFT, x2: W - RIGHT, y1: y2(ms), y2: y2(ms), class: `cap ${cls}`, 'data-cap': cls }));
    lines.append(s('text', { x: LEFT + 6, y: y2(ms) - 4, class: `axis-label cap-label ${cls}` }, label));
  };
  if (typeof caps.daily_ms === 'number') capLine(caps.daily_ms, 'cap-daily', `24 h cap ${fmt.duration(caps.daily_ms)}`);
  if (typeof caps.three_day_ms === 'number') capLine(caps.three_day_ms, 'cap-three-day', `72 h cap ${fmt.duration(caps.three_day_ms)}`);
  if (ceilingInRange) capLine(ceilingMs, 'cap-ceiling', `24 h ceiling ${fmt.duration(ceilingMs)}`);
  const path = (key) => {
    let d = '';
    let pen = false;
    hours.forEach((hr, i) => {
      const v = hr[key];
      if (v === null) { pen = false; return; }
      d += `${pen ? 'L' : 'M'}${(x(i) + slot).toFixed(1)},${y2(v).toFixed(1)}`;
      pen = true;
    });
    return d;
  };
  const d72 = path('t72');
  const d24 = path('t24');
  if (d72) lines.append(s('path', { d: d72, class: 'total total-72' }));
  if (d24) lines.append(s('path', { d: d24, class: 'total total-24' }));
  svg.append(lines);

  // The cursor: one hour highlighted in both panels.
  const cursor = s('g', { class: 'cursor', visibility: 'hidden', 'aria-hidden': 'true' },
    s('rect', { y: P1_TOP, height: P1_H, width: slot }),
    s('rect', { y: P2_TOP, height: P2_H, width: slot }));
  svg.append(cursor);
  const overlay = s('rect', { x: LEFT, y: P1_TOP, width: PLOT_W, height: P2_TOP + P2_H - P1_TOP, class: 'overlay' });
  svg.append(overlay);

  const readout = h('p', { class: 'readout', id: 'chart-readout', 'aria-live': 'polite' },
    'Point at the chart, or focus it and use the arrow keys, to read an hour.');
  let at = -1;
  const show = (i) => {
    at = Math.max(0, Math.min(n - 1, i));
    cursor.setAttribute('visibility', 'visible');
    for (const r of cursor.children) r.setAttribute('x', x(at));
    readout.textContent = hourText(hours[at], caps);
  };
  svg.addEventListener('keydown', (ev) => {
    const step = { ArrowLeft: -1, ArrowRight: 1, PageUp: -24, PageDown: 24 }[ev.key];
    if (step !== undefined) show((at < 0 ? n : at) + step);
    else if (ev.key === 'Home') show(0);
    else if (ev.key === 'End') show(n - 1);
    else return;
    ev.preventDefault();
  });
  svg.addEventListener('focus', () => { if (at < 0) show(n - 1); });
  svg.addEventListener('pointermove', (ev) => {
    const box = svg.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * W;
    if (px >= LEFT && px <= W - RIGHT) show(Math.floor((px - LEFT) / slot));
  });

  // Legend (HTML, so it wraps and reads well).
  const legend = h('ul', { class: 'legend', 'aria-label': 'Legend' },
    fmt.LANES.map((l) => h('li', null, h('span', { class: `swatch lane-${l.id}`, 'aria-hidden': 'true' }),
      `${l.label}${l.counted ? '' : ' (not counted toward caps)'}`)),
    h('li', null, h('span', { class: 'swatch line total-24', 'aria-hidden': 'true' }), 'trailing 24 h'),
    h('li', null, h('span', { class: 'swatch line total-72', 'aria-hidden': 'true' }), 'trailing 72 h'),
    h('li', null, h('span', { class: 'swatch line dashed cap-daily', 'aria-hidden': 'true' }), '24 h cap'),
    h('li', null, h('span', { class: 'swatch line dashed cap-three-day', 'aria-hidden': 'true' }), '72 h cap'),
    ceilingMs ? h('li', null, h('span', { class: 'swatch line dotted cap-ceiling', 'aria-hidden': 'true' }),
      ceilingInRange ? '24 h ceiling' : `24 h ceiling (${fmt.duration(ceilingMs)}, above this scale)`) : null);

  // The numbers, for anyone who would rather read a table.
  const rows = hours.filter((hr) => hr.total > 0);
  const table = h('details', { class: 'chart-data' },
    h('summary', null, `Show the numbers (${rows.length} hours with speech)`),
    h('table', { class: 'data compact' },
      h('caption', { class: 'visually-hidden' }, 'Speech per hour by lane, and trailing totals'),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Hour (UTC)'),
        fmt.LANES.map((l) => h('th', { scope: 'col' }, l.label)),
        h('th', { scope: 'col' }, 'Trailing 24 h'), h('th', { scope: 'col' }, 'Trailing 72 h'))),
      h('tbody', null, rows.map((hr) => h('tr', null, h('th', { scope: 'row' }, fmt.dayHour(hr.startMs)),
        fmt.LANES.map((l) => h('td', null, hr.byLane[l.id] ? fmt.duration(hr.byLane[l.id]) : '')),
        h('td', null, hr.t24 === null ? '—' : fmt.duration(hr.t24)),
        h('td', null, hr.t72 === null ? '—' : fmt.duration(hr.t72)))))));

  return h('figure', { class: 'chart-figure' },
    svg,
    legend,
    readout,
    h('figcaption', null, summary,
      ' Lines start once the 7 days of minutes the API returns cover the whole window.'),
    table);
}
