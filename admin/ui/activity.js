// The user page's Activity tab: an SVG bar chart of active time per day
// over the last 14 days (days counted in the user's time zone), and the
// sessions of a day when its bar is chosen.
//
// Hooks used by the browser tests (keep them stable):
//   svg#activity-chart rect.bar[data-date="YYYY-MM-DD"] (only days with
//   activity), each with a <title> · #day-sessions tbody tr
//   #tz-admin, #tz-user, .tz-differs (only when the zones differ)

import {
  h, s, fill, query, showError, td, table, loadFailed, deviceBadge, fmtTime, fmtDuration, viewerZone, ipText, parseTime,
} from './ui.js';

const DAYS = 14;

// Chart geometry, in SVG user units (the SVG scales to its box): compact
// on phones, so that the labels stay readable once scaled.
function geometry() {
  const narrow = window.matchMedia('(max-width: 600px)').matches;
  return narrow
    ? { SLOT: 23, BAR: 15, LEFT: 44, TOP: 10, PLOT: 120, BOTTOM: 32 }
    : { SLOT: 40, BAR: 26, LEFT: 52, TOP: 12, PLOT: 150, BOTTOM: 34 };
}

// dateRange lists the YYYY-MM-DD dates from..to inclusive.
function dateRange(from, to) {
  const out = [];
  const d = new Date(from + 'T12:00:00Z');
  const end = new Date(to + 'T12:00:00Z');
  if (Number.isNaN(d.getTime()) || Number.isNaN(end.getTime())) return out;
  while (d <= end && out.length <= 366) {
    out.push(d.toISOString().slice(0, 10));
    d.setUTCDate(d.getUTCDate() + 1);
  }
  return out;
}

// dayLabel formats a calendar date ("Mon, 5 May"); the date is a local
// date of the user, so it is formatted as such, not converted.
function dayLabel(date, opts = { weekday: 'short', day: 'numeric', month: 'short' }) {
  const d = new Date(date + 'T12:00:00Z');
  if (Number.isNaN(d.getTime())) return date;
  return new Intl.DateTimeFormat(undefined, { ...opts, timeZone: 'UTC' }).format(d);
}

// niceMax rounds the longest day up to a readable axis maximum.
function niceMax(sec) {
  const steps = [60, 300, 900, 1800, 3600, 7200, 10800, 14400, 21600, 28800, 43200, 86400];
  return steps.find((x) => x >= sec) || Math.ceil(sec / 3600) * 3600;
}

export function activityPanel(p) {
  const adminZone = viewerZone();
  const zones = h('div', { class: 'zones' }, h('p', { class: 'loading' }, 'Loading…'));
  const chartSlot = h('div', { class: 'chart-slot' });
  const daySlot = h('section', { class: 'day', 'aria-live': 'polite' });

  (async () => {
    try {
      const rep = await p.api.get(p.base + '/activity' + query({ days: DAYS, tz: adminZone }));
      if (!p.live()) return;
      showZones(zones, rep, adminZone);
      const days = Array.isArray(rep.days) ? rep.days : [];
      const dates = rep.from && rep.to ? dateRange(rep.from, rep.to) : days.map((d) => d.date);
      fill(chartSlot, chart(dates, days, (date) => showDay(p, daySlot, date, adminZone)));
      if (!days.some((d) => Number(d.active_seconds) > 0)) {
        chartSlot.appendChild(h('p', { class: 'empty' }, 'No activity in the last ' + DAYS + ' days.'));
      }
    } catch (err) {
      if (!p.live()) return;
      showError(err);
      fill(zones, h('p', { class: 'empty' }, loadFailed(err, 'the activity')));
    }
  })();

  return h('div', {},
    h('h2', {}, 'Activity'),
    zones, chartSlot, daySlot);
}

// showZones names both time zones and flags when they differ.
function showZones(el, rep, adminZone) {
  fill(el,
    h('p', { class: 'tz-line' },
      'Your time zone: ', h('strong', { id: 'tz-admin' }, rep.admin_time_zone || adminZone),
      ' · User\u2019s time zone: ', h('strong', { id: 'tz-user' }, rep.user_time_zone || 'unknown')),
    rep.time_zone_differs ? h('p', { class: 'tz-differs' },
      'The time zones differ: days and times are the user\u2019s local ones; your times are shown beside them.') : null);
}

// chart draws one slot per date and a bar for each day with activity.
// onPick(date) lists that day's sessions.
function chart(dates, days, onPick) {
  const { SLOT, BAR, LEFT, TOP, PLOT, BOTTOM } = geometry();
  const byDate = new Map(days.map((d) => [d.date, d]));
  const max = niceMax(Math.max(60, ...days.map((d) => Number(d.active_seconds) || 0)));
  const width = LEFT + SLOT * Math.max(dates.length, 1) + 8;
  const height = TOP + PLOT + BOTTOM;
  const y = (sec) => TOP + PLOT - (PLOT * sec) / max;

  const svg = s('svg', {
    id: 'activity-chart', class: 'chart', viewBox: '0 0 ' + width + ' ' + height, role: 'group',
    'aria-label': 'Active time per day' + (dates.length ? ', ' + dayLabel(dates[0]) + ' to ' + dayLabel(dates[dates.length - 1]) : ''),
    preserveAspectRatio: 'xMinYMin meet',
  });

  // Axis: gridlines at 0, half and max.
  for (const sec of [0, max / 2, max]) {
    svg.appendChild(s('line', { class: 'grid', x1: LEFT, x2: width - 4, y1: y(sec), y2: y(sec) }));
    svg.appendChild(s('text', { class: 'axis', x: LEFT - 6, y: y(sec) + 4, 'text-anchor': 'end' }, fmtDuration(sec)));
  }

  let selected = null;
  dates.forEach((date, i) => {
    const x = LEFT + i * SLOT + (SLOT - BAR) / 2;
    svg.appendChild(s('text', {
      class: 'axis day-label', x: x + BAR / 2, y: TOP + PLOT + 16, 'text-anchor': 'middle',
    }, dayLabel(date, { day: 'numeric' })));
    if (i === 0 || date.endsWith('-01')) {
      svg.appendChild(s('text', { class: 'axis month-label', x: x + BAR / 2, y: TOP + PLOT + 30, 'text-anchor': 'middle' },
        dayLabel(date, { month: 'short' })));
    }
    const d = byDate.get(date);
    const sec = d ? Number(d.active_seconds) || 0 : 0;
    if (sec <= 0) return; // only days with activity get a bar
    const top = Math.min(y(sec), TOP + PLOT - 3); // a short day stays visible
    const n = Number(d.sessions) || 0;
    const text = dayLabel(date) + ': ' + fmtDuration(sec) + ' active, ' + n + ' session' + (n === 1 ? '' : 's');
    const bar = s('rect', {
      class: 'bar', 'data-date': date, x, y: top, width: BAR, height: TOP + PLOT - top, rx: 2,
      tabindex: 0, role: 'button', 'aria-label': text + '. Show sessions.', 'aria-pressed': 'false',
    }, s('title', {}, text));
    const pick = () => {
      if (selected) {
        selected.classList.remove('selected');
        selected.setAttribute('aria-pressed', 'false');
      }
      selected = bar;
      bar.classList.add('selected');
      bar.setAttribute('aria-pressed', 'true');
      onPick(date);
    };
    bar.addEventListener('click', pick);
    bar.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        pick();
      }
    });
    svg.appendChild(bar);
  });

  return h('figure', { class: 'chart-figure' }, svg,
    h('figcaption', { class: 'muted' }, 'Active time per day in the user\u2019s time zone. Select a bar to list that day\u2019s sessions.'));
}

// fmtTimeOn formats v in zone, as a time of day only when it falls on
// date (YYYY-MM-DD) there.
function fmtTimeOn(v, zone, date) {
  const d = parseTime(v);
  if (!d) return '—';
  try {
    const local = new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(d);
    if (local === date) return new Intl.DateTimeFormat(undefined, { timeZone: zone, timeStyle: 'short' }).format(d);
  } catch (e) {
    // unknown zone: the full form below
  }
  return fmtTime(v, zone);
}

// showDay lists the sessions of date in el.
let dayReq = 0;
async function showDay(p, el, date, adminZone) {
  const mine = ++dayReq;
  fill(el, h('h3', {}, 'Sessions on ' + dayLabel(date, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' })),
    h('p', { class: 'loading' }, 'Loading…'));
  try {
    const rep = await p.api.get(p.base + '/activity/' + encodeURIComponent(date) + query({ tz: adminZone }));
    if (!p.live() || mine !== dayReq) return;
    const differs = !!rep.time_zone_differs;
    const zone = rep.user_time_zone;
    const cols = ['Device', 'Start', 'End', 'Duration', 'On this day'];
    if (differs) cols.push('Start (your time)', 'End (your time)');
    cols.push('IP', 'Location', 'Browser', 'OS');
    const { table: tbl, tbody } = table('day-sessions', 'Sessions on ' + date, cols);
    const list = Array.isArray(rep.sessions) ? rep.sessions : [];
    // A time on the chosen date shows as a time of day only.
    const when = (v, z) => (v === 'active' ? 'Active' : fmtTimeOn(v, z, date));
    for (const x of list) {
      tbody.appendChild(h('tr', { 'data-session': x.id },
        td('Device', deviceBadge(x.device_type)),
        td('Start', when(x.start, zone)),
        td('End', when(x.end, zone)),
        td('Duration', fmtDuration(x.duration_seconds)),
        td('On this day', fmtDuration(x.on_this_day_seconds)),
        differs ? td('Start (your time)', when(x.admin_start, adminZone)) : null,
        differs ? td('End (your time)', when(x.admin_end, adminZone)) : null,
        td('IP', h('span', { class: 'mono' }, ipText(x.ip))),
        td('Location', x.location || 'Unknown location'),
        td('Browser', x.browser || 'Unknown browser'),
        td('OS', x.os || 'Unknown OS')));
    }
    fill(el, el.firstChild, list.length
      ? h('div', { class: 'table-wrap' }, tbl)
      : h('p', { class: 'empty' }, 'No sessions on this day.'));
  } catch (err) {
    if (!p.live() || mine !== dayReq) return;
    showError(err);
    fill(el, el.firstChild, h('p', { class: 'empty' }, loadFailed(err, 'that day')));
  }
}
