// Risk signals on the user page: the Risk tab (the user's findings, newest
// first, with what was done and the evidence) and the badges that mark
// sessions and devices a signal was raised on.
//
// Hooks used by the browser tests (keep them stable):
//   [role=tab][data-tab="risk"] · risk: tr[data-risk][data-signal]
//   .risk-badge[data-signal] on history and device rows

import { h, fill, query, showError, timeEl, td, messageRow, table, loadFailed, browserText, osText, locationText, ipText } from './ui.js';
import { pager, PAGE_SIZE } from './widgets.js';

// What each signal means, in words.
export const SIGNALS = {
  cookie_moved: 'Cookie used elsewhere',
  new_device: 'New device',
  new_country: 'New country',
  impossible_travel: 'Impossible travel',
  distant_concurrent: 'Distant at once',
};

const RISK_ACTIONS = {
  log: 'Recorded',
  notify: 'User alerted',
  block: 'Device blocked',
  revoke: 'Session revoked',
  challenge: 'Sent to log in again',
};

// riskBadges marks what was raised on a session or device.
export function riskBadges(signals) {
  if (!Array.isArray(signals) || signals.length === 0) return null;
  return h('span', { class: 'risk-badges' }, ...signals.map((s) => h('span', {
    class: 'badge badge-risk risk-badge', 'data-signal': String(s), title: 'Risk signal: ' + (SIGNALS[s] || s),
  }, SIGNALS[s] || String(s))));
}

// evidenceText says what a finding rests on.
function evidenceText(e) {
  if (!e || typeof e !== 'object') return '—';
  const parts = [];
  if (e.from) parts.push('from ' + locationText(e.from));
  if (Number(e.distance_km) > 0) parts.push(Math.round(Number(e.distance_km)).toLocaleString() + ' km');
  if (Number(e.speed_kmh) > 0) parts.push(Math.round(Number(e.speed_kmh)).toLocaleString() + ' km/h');
  if (Array.isArray(e.agents) && e.agents.length === 2 && e.agents[0] !== e.agents[1]) parts.push(e.agents[0] + ' → ' + e.agents[1]);
  return parts.length ? parts.join(' · ') : '—';
}

export function riskPanel(p) {
  const { table: tbl, tbody } = table('risk', 'Risk signals, newest first', [
    'When', 'Signal', 'Action taken', 'Browser', 'IP', 'Location', 'Evidence']);
  const pagerSlot = h('div', { class: 'pager-slot' });
  fill(tbody, messageRow(7, 'Loading…', 'loading'));

  function row(f) {
    return h('tr', { 'data-risk': String(f.id), 'data-signal': String(f.signal) },
      td('When', timeEl(f.at)),
      td('Signal', riskBadges([f.signal])),
      td('Action taken', RISK_ACTIONS[f.action] || String(f.action || '—')),
      td('Browser', browserText(f.agent) + ' on ' + osText(f.agent)),
      td('IP', h('span', { class: 'mono' }, ipText(f.ip))),
      td('Location', locationText(f.location)),
      td('Evidence', evidenceText(f.evidence)));
  }

  (async () => {
    try {
      const page = await p.api.get(p.base + '/risk' + query({ offset: p.params.get('offset') || '', limit: PAGE_SIZE }));
      if (!p.live()) return;
      const list = Array.isArray(page.risk) ? page.risk : [];
      fill(tbody, list.length ? list.map(row) : messageRow(7, 'No risk signals for this user.'));
      fill(pagerSlot, pager({ ...page, count: list.length }, (o) => p.go({ offset: o || '' }), 'signals'));
    } catch (err) {
      if (!p.live()) return;
      showError(err);
      fill(tbody, messageRow(7, loadFailed(err, 'the risk signals'), 'error'));
    }
  })();

  return h('div', {},
    h('h2', {}, 'Risk signals'),
    h('p', { class: 'muted' }, 'Raised when a session opens or moves to another IP or device. Each is recorded once per session and device.'),
    h('div', { class: 'table-wrap' }, tbl), pagerSlot);
}
