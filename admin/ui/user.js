// The dashboard's user page: summary, exempt switch, export menu, erase,
// and the tabs Login history, Devices, Restriction history (the Activity
// tab is activity.js, the Risk tab risk.js).
//
// Hooks used by the browser tests (keep them stable):
//   [role=tab][data-tab="history"|"devices"|"violations"|"risk"|"activity"]
//   history: tr[data-session] with button.revoke · #revoke-all
//   devices: tr[data-device][data-blocked="true|false"] with button.block-toggle
//   violations: tr[data-violation][data-viewed="true|false"] with
//     button.viewed-toggle · #mark-all-viewed
//   input.exempt-toggle · #export-menu (button), a#export-csv, a#export-json
//   #erase-user, dialog#confirm with #confirm-yes / #confirm-no
//   #prev-page, #next-page (paged tabs)

import {
  h, fill, query, banner, showError, timeEl, td, messageRow, table, loadFailed, deviceBadge,
  browserText, osText, locationText, ipText, icon, seg, isDotId,
} from './ui.js';
import { pager, exemptSwitch, confirmDialog, userPath, PAGE_SIZE } from './widgets.js';
import { activityPanel } from './activity.js';
import { riskPanel, riskBadges } from './risk.js';

const TABS = [
  ['history', 'Login history'],
  ['devices', 'Devices'],
  ['violations', 'Restriction history'],
  ['risk', 'Risk'],
  ['activity', 'Activity'],
];

// Why a session ended, in words.
const END_REASONS = {
  logout: 'Logged out',
  idle: 'Idle timeout',
  revoked: 'Revoked',
  replaced: 'Replaced by a new login',
  device_blocked: 'Device blocked',
  evicted: 'Evicted (session limit)',
  erased: 'Erased',
};

const POLICIES = { max_ips: 'IP addresses', max_devices: 'Devices', max_sessions: 'Sessions' };
const ACTIONS = { block: 'Blocked', log: 'Logged only', evict_oldest: 'Oldest session ended', revoked: 'Session revoked, device blocked' };

export function userView(ctx) {
  const { realm } = ctx;
  const user = ctx.route.user;
  if (isDotId(user) || isDotId(realm)) return dotIdView(ctx, user);
  const base = userPath(realm, user);
  let tab = 'history';
  let params = new URLSearchParams();
  let req = 0;
  let summaryAsked = false;

  // ------------------------------------------------------------ header
  const summary = h('dl', { class: 'summary' });
  const exemptSlot = h('div', { class: 'exempt-slot' });
  const tabButtons = TABS.map(([id, label]) => h('button', {
    type: 'button', role: 'tab', id: 'tab-' + id, 'data-tab': id, 'aria-controls': 'tab-panel',
    on: { click: () => go(id), keydown: onTabKey },
  }, label));
  const panel = h('div', { id: 'tab-panel', role: 'tabpanel', tabindex: '0' });

  const el = h('section', { class: 'view-user' },
    h('p', { class: 'breadcrumb' }, h('a', { href: ctx.href.realm(realm) }, '‹ All users')),
    h('h1', { class: 'user-id' }, h('span', { class: 'visually-hidden' }, 'User '), user),
    summary,
    h('div', { class: 'user-actions' },
      exemptSlot,
      exportMenu(ctx.api.url(base)),
      h('button', { type: 'button', id: 'erase-user', class: 'button danger', on: { click: erase } }, 'Erase user…')),
    h('div', { role: 'tablist', 'aria-label': 'User data', class: 'tabs' }, tabButtons),
    panel);

  // go shows tab (a history entry, so back/forward move between tabs).
  function go(id, p = {}) {
    location.hash = ctx.href.user(realm, user, id, p);
  }

  // Arrow keys, Home and End move between tabs (WAI-ARIA tabs pattern).
  function onTabKey(e) {
    const i = TABS.findIndex(([id]) => id === e.currentTarget.dataset.tab);
    const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 };
    if (!(e.key in moves)) return;
    e.preventDefault();
    const j = (moves[e.key] + TABS.length) % TABS.length;
    go(TABS[j][0]);
  }

  // ----------------------------------------------------------- summary
  async function loadSummary() {
    try {
      const sum = await ctx.api.get(base);
      if (!ctx.alive()) return null;
      const n = Number(sum.unviewed_violations) || 0;
      fill(summary,
        h('div', {}, h('dt', {}, 'Last activity'), h('dd', {}, timeEl(sum.last_activity))),
        h('div', {}, h('dt', {}, 'Active sessions'), h('dd', {}, String(sum.active_sessions || 0))),
        h('div', {}, h('dt', {}, 'Devices'), h('dd', {}, String(sum.devices || 0))),
        h('div', {}, h('dt', {}, 'Unviewed violations'), h('dd', {},
          n > 0 ? h('a', { class: 'violation-marker', href: ctx.href.user(realm, user, 'violations') },
            icon('warning'), h('span', {}, String(n))) : '0')));
      const input = exemptSlot.querySelector('input.exempt-toggle');
      if (input) input.checked = !!sum.exempt; // keeps keyboard focus on it
      else fill(exemptSlot, exemptSwitch(ctx, realm, user, sum.exempt, refresh, 'Exempt from limits'));
      return sum;
    } catch (err) {
      if (!ctx.alive()) return null;
      showError(err);
      fill(summary, h('p', { class: 'empty' }, err.status === 404
        ? 'Nothing is held about this user (never seen, or erased).'
        : loadFailed(err, 'this user')));
      return null;
    }
  }

  // ------------------------------------------------------------- tabs
  function showTab() {
    for (const b of tabButtons) {
      const on = b.dataset.tab === tab;
      b.setAttribute('aria-selected', on ? 'true' : 'false');
      b.tabIndex = on ? 0 : -1;
      if (on) panel.setAttribute('aria-labelledby', b.id);
    }
    const mine = ++req;
    const live = () => ctx.alive() && mine === req;
    const pctx = { ...ctx, base, user, live, refresh, go: (p) => go(tab, p), params };
    const render = { history: historyPanel, devices: devicesPanel, violations: violationsPanel, risk: riskPanel, activity: activityPanel }[tab];
    fill(panel, render(pctx));
  }

  // refresh re-fetches the summary and the open tab: the server's truth
  // after a change.
  function refresh() {
    // A button that acted is about to be redrawn: keep focus nearby.
    const inPanel = panel.contains(document.activeElement);
    loadSummary();
    showTab();
    if (inPanel) panel.focus({ preventScroll: true });
  }

  async function erase() {
    const yes = await confirmDialog('Erase ' + user + '?',
      'Everything held about ' + user + ' (sessions, devices, history, activity) is deleted and their active ' +
      'sessions are revoked. This cannot be undone.', 'Erase user');
    if (!yes) return;
    try {
      const res = await ctx.api.send('DELETE', base);
      const n = Number(res.revoked_sessions) || 0;
      ctx.navigate(ctx.href.realm(realm), user + ' was erased; ' + n + ' active session' + (n === 1 ? '' : 's') + ' revoked.');
    } catch (err) {
      showError(err);
      refresh();
    }
  }

  return {
    el,
    update(r) {
      ctx.setNav(realm, 'users');
      const focused = document.activeElement && document.activeElement.getAttribute('role') === 'tab';
      tab = TABS.some(([id]) => id === r.tab) ? r.tab : 'history';
      params = r.params;
      if (!summaryAsked) {
        summaryAsked = true;
        loadSummary();
      }
      showTab();
      if (focused) tabButtons.find((b) => b.dataset.tab === tab).focus();
    },
  };
}

// dotIdView explains why a user named "." or ".." cannot be opened: the
// API addresses users by path, and browsers resolve such segments.
function dotIdView(ctx, user) {
  return {
    el: h('section', { class: 'view-user' },
      h('p', { class: 'breadcrumb' }, h('a', { href: ctx.href.realm(ctx.realm) }, '‹ All users')),
      h('h1', { class: 'user-id' }, user),
      h('p', { class: 'empty' }, 'The user id \u201c' + user + '\u201d cannot be used in a URL path ' +
        '(browsers read it as a directory step), so this dashboard cannot show or change this user. ' +
        'Use the admin API from a script instead.')),
    update: () => ctx.setNav(ctx.realm, 'users'),
  };
}

// exportMenu is a button that opens a small menu of download links
// (the links are plain GETs of the API, so the browser downloads them).
function exportMenu(userURL) {
  const button = h('button', {
    type: 'button', id: 'export-menu', class: 'button', 'aria-haspopup': 'true', 'aria-expanded': 'false',
    'aria-controls': 'export-list',
  }, 'Export ▾');
  const list = h('ul', { id: 'export-list', class: 'menu', hidden: true },
    h('li', {}, h('a', { id: 'export-csv', href: userURL + '/sessions.csv', download: 'sessions.csv' }, 'Sessions (CSV)')),
    h('li', {}, h('a', { id: 'export-json', href: userURL + '/export', download: 'export.json' }, 'Everything held (JSON)')));
  const wrap = h('div', { class: 'menu-wrap' }, button, list);
  const open = (on) => {
    list.hidden = !on;
    button.setAttribute('aria-expanded', on ? 'true' : 'false');
  };
  button.addEventListener('click', () => {
    open(list.hidden);
    if (!list.hidden) list.querySelector('a').focus();
  });
  wrap.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !list.hidden) {
      open(false);
      button.focus();
    }
  });
  wrap.addEventListener('focusout', (e) => {
    if (!wrap.contains(e.relatedTarget)) open(false);
  });
  list.addEventListener('click', () => setTimeout(() => open(false), 0));
  return wrap;
}

// ------------------------------------------------------------ history

function historyPanel(p) {
  const revokeAll = h('button', { type: 'button', id: 'revoke-all', class: 'button danger' }, 'Revoke all active sessions');
  const { table: tbl, tbody } = table('history', 'Login history, newest first', [
    'Device', 'Browser', 'OS', 'IP', 'Location', 'Started', 'Last activity', 'Ended', 'Action']);
  const pagerSlot = h('div', { class: 'pager-slot' });
  fill(tbody, messageRow(9, 'Loading…', 'loading'));

  revokeAll.addEventListener('click', () => act(p, 'DELETE', p.base + '/sessions', undefined, (res) => {
    const n = Array.isArray(res.revoked) ? res.revoked.length : 0;
    return n + ' active session' + (n === 1 ? '' : 's') + ' revoked.';
  }));

  function row(sess) {
    const active = !sess.ended_at;
    const what = browserText(sess.agent) + ' on ' + osText(sess.agent);
    return h('tr', { 'data-session': sess.id, class: active ? 'is-active' : 'is-ended' },
      td('Device', deviceBadge(sess.agent && sess.agent.device_type)),
      td('Browser', browserText(sess.agent)),
      td('OS', osText(sess.agent)),
      td('IP', h('span', { class: 'mono' }, ipText(sess.ip))),
      td('Location', locationText(sess.location), riskBadges(sess.risk)),
      td('Started', timeEl(sess.started_at)),
      td('Last activity', timeEl(sess.last_seen)),
      td('Ended', active ? h('span', { class: 'badge badge-active' }, 'Active')
        : h('span', {}, timeEl(sess.ended_at), h('br'),
          h('span', { class: 'muted' }, END_REASONS[sess.end_reason] || sess.end_reason || 'Ended'))),
      td('Action', active ? h('button', {
        type: 'button', class: 'button revoke', 'aria-label': 'Revoke session: ' + what,
        on: { click: () => act(p, 'DELETE', p.base + '/sessions/' + seg(sess.id), undefined, () => 'Session revoked.') },
      }, 'Revoke') : null));
  }

  (async () => {
    try {
      const page = await p.api.get(p.base + '/sessions' + query({
        state: 'all', offset: p.params.get('offset') || '', limit: PAGE_SIZE,
      }));
      if (!p.live()) return;
      const list = Array.isArray(page.sessions) ? page.sessions : [];
      fill(tbody, list.length ? list.map(row) : messageRow(9, 'No sessions yet.'));
      revokeAll.disabled = !Number(page.total);
      fill(pagerSlot, pager({ ...page, count: list.length }, (o) => p.go({ offset: o || '' }), 'sessions'));
    } catch (err) {
      if (!p.live()) return;
      showError(err);
      fill(tbody, messageRow(9, loadFailed(err, 'the sessions'), 'error'));
    }
  })();

  return h('div', {},
    h('div', { class: 'panel-toolbar' }, h('h2', {}, 'Login history'), revokeAll),
    h('p', { class: 'muted' }, 'Newest first. Times are in your time zone.'),
    h('div', { class: 'table-wrap' }, tbl), pagerSlot);
}

// act makes one change, tells the outcome in the banner and re-fetches.
async function act(p, method, path, body, message) {
  try {
    const res = await p.api.send(method, path, body);
    banner(message(res), 'info');
  } catch (err) {
    showError(err);
  }
  if (p.live()) p.refresh();
}

// ------------------------------------------------------------ devices

function devicesPanel(p) {
  const { table: tbl, tbody } = table('devices', 'Devices, most recent first', [
    'Device', 'Browser', 'OS', 'First seen', 'Last seen', 'Last IP', 'Location', 'Status', 'Action']);
  fill(tbody, messageRow(9, 'Loading…', 'loading'));

  function row(d) {
    const what = browserText(d.agent) + ' on ' + osText(d.agent);
    const blocked = !!d.blocked;
    return h('tr', { 'data-device': d.id, 'data-blocked': blocked ? 'true' : 'false' },
      td('Device', deviceBadge(d.agent && d.agent.device_type)),
      td('Browser', browserText(d.agent)),
      td('OS', osText(d.agent)),
      td('First seen', timeEl(d.first_seen)),
      td('Last seen', timeEl(d.last_seen)),
      td('Last IP', h('span', { class: 'mono' }, ipText(d.last_ip))),
      td('Location', locationText(d.location)),
      td('Status', blocked ? h('span', { class: 'badge badge-blocked' }, 'Blocked') : h('span', { class: 'badge' }, 'Allowed'), riskBadges(d.risk)),
      td('Action', h('button', {
        type: 'button', class: 'button block-toggle' + (blocked ? '' : ' danger'),
        'aria-label': (blocked ? 'Allow device: ' : 'Block device: ') + what,
        on: {
          click: () => act(p, 'PUT', p.base + '/devices/' + seg(d.id), { blocked: !blocked }, (res) => {
            if (!res.blocked) return 'Device allowed again.';
            const n = Array.isArray(res.ended_sessions) ? res.ended_sessions.length : 0;
            return 'Device blocked; ' + n + ' active session' + (n === 1 ? '' : 's') + ' ended.';
          }),
        },
      }, blocked ? 'Allow' : 'Block')));
  }

  (async () => {
    try {
      const res = await p.api.get(p.base + '/devices');
      if (!p.live()) return;
      const list = Array.isArray(res.devices) ? res.devices : [];
      fill(tbody, list.length ? list.map(row) : messageRow(9, 'No devices yet.'));
    } catch (err) {
      if (!p.live()) return;
      showError(err);
      fill(tbody, messageRow(9, loadFailed(err, 'the devices'), 'error'));
    }
  })();

  return h('div', {},
    h('h2', {}, 'Devices'),
    h('p', { class: 'muted' }, 'A blocked device cannot log in; blocking it ends its active sessions.'),
    h('div', { class: 'table-wrap' }, tbl));
}

// --------------------------------------------------------- violations

function violationsPanel(p) {
  const markAll = h('button', { type: 'button', id: 'mark-all-viewed', class: 'button' }, 'Mark all viewed');
  const { table: tbl, tbody } = table('violations', 'Restriction history, newest first', [
    'When', 'Limit', 'Observed', 'Action taken', 'IP', 'Location', 'Device', 'Viewed']);
  const pagerSlot = h('div', { class: 'pager-slot' });
  fill(tbody, messageRow(8, 'Loading…', 'loading'));
  markAll.addEventListener('click', () => act(p, 'PATCH', p.base + '/violations', { viewed: true },
    () => 'All violations marked viewed.'));

  function row(v) {
    const viewed = !!v.viewed;
    return h('tr', { 'data-violation': v.id, 'data-viewed': viewed ? 'true' : 'false', class: viewed ? '' : 'is-new' },
      td('When', timeEl(v.time)),
      td('Limit', v.policy === 'reported' ? 'Reported by the user: "this wasn\'t me"'
        : (POLICIES[v.policy] || v.policy || '—') + ': at most ' + (Number(v.limit) || 0)),
      td('Observed', String(Number(v.observed) || 0)),
      td('Action taken', ACTIONS[v.action] || v.action || '—'),
      td('IP', h('span', { class: 'mono' }, ipText(v.ip))),
      td('Location', v.location || 'Unknown location'),
      td('Device', h('span', { class: 'mono' }, v.device_id || '—')),
      td('Viewed', h('button', {
        type: 'button', class: 'button viewed-toggle', 'aria-pressed': viewed ? 'true' : 'false',
        disabled: viewed, title: viewed ? 'Viewed' : 'Mark this violation viewed',
        on: {
          click: () => act(p, 'PATCH', p.base + '/violations/' + seg(v.id), { viewed: true },
            () => 'Violation marked viewed.'),
        },
      }, viewed ? '✓ Viewed' : 'Mark viewed')));
  }

  (async () => {
    try {
      const page = await p.api.get(p.base + '/violations' + query({
        offset: p.params.get('offset') || '', limit: PAGE_SIZE,
      }));
      if (!p.live()) return;
      const list = Array.isArray(page.violations) ? page.violations : [];
      fill(tbody, list.length ? list.map(row) : messageRow(8, 'No violations: this user never went past a limit.'));
      markAll.disabled = list.length === 0;
      fill(pagerSlot, pager({ ...page, count: list.length }, (o) => p.go({ offset: o || '' }), 'violations'));
    } catch (err) {
      if (!p.live()) return;
      showError(err);
      fill(tbody, messageRow(8, loadFailed(err, 'the restriction history'), 'error'));
    }
  })();

  return h('div', {},
    h('div', { class: 'panel-toolbar' }, h('h2', {}, 'Restriction history'), markAll),
    h('p', { class: 'note' }, 'Marking a violation viewed never changes a restriction.'),
    h('div', { class: 'table-wrap' }, tbl), pagerSlot);
}
