// The admin dashboard: hash router, realm picker, users list and realm
// settings. The user page is in user.js, its activity chart in
// activity.js, shared helpers in ui.js.
//
// Routes (segments are encodeURIComponent-ed; back/forward work):
//   #/                                  users of the only realm, or a realm picker
//   #/realm/<r>?prefix=&offset=&violations=unviewed&active=true
//   #/realm/<r>/settings
//   #/realm/<r>/user/<u>/<tab>?offset=  tab: history | devices | violations | risk | activity
//
// Hooks used by the browser tests (keep them stable):
//   #banner (role=alert) · #user-search · #users tbody tr[data-user]
//   .violation-marker (a) in a user row · input.exempt-toggle
//   #prev-page, #next-page · settings: #setting-tracking, #setting-geo,
//   #setting-ip-precision, #save-settings · dialog#confirm, #confirm-yes,
//   #confirm-no (user.js lists the user page's hooks)

import {
  h, fill, apiClient, seg, query, banner, showError, timeEl, td, messageRow, table, ApiError, loadFailed, icon,
} from './ui.js';
import { href, pager, exemptSwitch, PAGE_SIZE } from './widgets.js';
import { userView } from './user.js';

const meta = document.querySelector('meta[name="sessions-api"]');
const api = apiClient(meta ? meta.getAttribute('content') : '');
const main = document.getElementById('main');
const nav = document.getElementById('nav');
const baseTitle = document.title;

// parseHash reads location.hash into {name, realm, user, tab, params}.
function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const qi = raw.indexOf('?');
  const path = qi < 0 ? raw : raw.slice(0, qi);
  const params = new URLSearchParams(qi < 0 ? '' : raw.slice(qi + 1));
  const parts = path.split('/').filter((p) => p !== '').map((p) => {
    try {
      return decodeURIComponent(p);
    } catch (e) {
      return p;
    }
  });
  if (parts[0] === 'realm' && parts.length >= 2) {
    const realm = parts[1];
    if (parts[2] === 'settings') return { name: 'settings', realm, params };
    if (parts[2] === 'user' && parts.length >= 4) {
      return { name: 'user', realm, user: parts[3], tab: parts[4] || 'history', params };
    }
    return { name: 'users', realm, params };
  }
  return { name: 'home', params };
}

// --------------------------------------------------------------- router

let current = null; // the view on screen: {key, update(route)}
let seq = 0; // bumps on every view change, to drop stale answers
let flash = null; // a banner to show after the next navigation

// navigate goes to hash, showing message in the banner once there.
function navigate(hash, message) {
  flash = message || null;
  if (location.hash === hash) route();
  else location.hash = hash;
}

// ctx is what views get: the API, hrefs, navigation, and alive() which
// turns false once another view replaced theirs.
function makeCtx(r) {
  const mine = ++seq;
  return { api, href, navigate, route: r, realm: r.realm, alive: () => mine === seq, reload: route, setNav };
}

function viewKey(r) {
  if (r.name === 'users' || r.name === 'settings') return r.name + ':' + r.realm;
  if (r.name === 'user') return 'user:' + r.realm + '\u0000' + r.user;
  return r.name;
}

function route() {
  const r = parseHash();
  const key = viewKey(r);
  if (flash) {
    banner(flash, 'info');
    flash = null;
  } else if (!current || current.key !== key) {
    banner('');
  }
  if (current && current.key === key && current.update) {
    current.update(r);
    return;
  }
  const ctx = makeCtx(r);
  const build = { home: homeView, users: usersView, settings: settingsView, user: userView }[r.name];
  current = build(ctx);
  current.key = key;
  fill(main, current.el);
  const heading = main.querySelector('h1');
  document.title = (heading ? heading.textContent + ' \u2013 ' : '') + baseTitle;
  if (heading && document.activeElement !== document.getElementById('user-search')) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
  if (current.update) current.update(r);
}

// --------------------------------------------------------------- nav

let realmNames = null; // from GET /, for the nav

// setNav shows the realm's links, aria-current on the active one.
function setNav(realm, active) {
  if (!realm) {
    nav.replaceChildren();
    return;
  }
  const link = (text, target, name) => h('a', { href: target, 'aria-current': active === name ? 'page' : null }, text);
  fill(nav, h('ul', { class: 'nav-list' },
    realmNames && realmNames.length > 1 ? h('li', {}, link('All realms', href.home(), 'home')) : null,
    h('li', { class: 'nav-realm' }, h('span', { class: 'muted' }, 'Realm '), h('strong', {}, realm)),
    h('li', {}, link('Users', href.realm(realm), 'users')),
    h('li', {}, link('Settings', href.settings(realm), 'settings'))));
}

async function loadRealms() {
  const idx = await api.get('/');
  realmNames = Array.isArray(idx.realms) ? idx.realms : [];
  return idx;
}

// ---------------------------------------------------------- home view

// homeView shows the only realm's users, or lets the admin pick a realm.
function homeView(ctx) {
  const el = h('div', {}, h('h1', {}, 'Sessions'), h('p', { class: 'loading' }, 'Loading…'));
  setNav(null);
  loadRealms().then((idx) => {
    if (!ctx.alive()) return;
    if (realmNames.length === 1) {
      // One realm: its users list is the home page (no history entry).
      history.replaceState(null, '', href.realm(realmNames[0]));
      route();
      return;
    }
    if (realmNames.length === 0) {
      fill(el, h('h1', {}, 'Sessions'), h('p', { class: 'empty' },
        'No realm is tracked yet: no sessions handler of the running configuration serves one.'));
      return;
    }
    fill(el, h('h1', {}, 'Realms'),
      h('p', {}, 'Choose the realm whose users you want to see.'),
      h('ul', { class: 'realm-list' }, realmNames.map((r) => h('li', {},
        h('a', { href: href.realm(r), class: 'realm-link' }, r),
        ' ', h('a', { href: href.settings(r), class: 'muted' }, 'settings')))),
      h('p', { class: 'muted' }, (idx.cache_entries || 0) + ' session tokens cached on this server.'));
  }).catch((err) => {
    if (!ctx.alive()) return;
    showError(err);
    fill(el, h('h1', {}, 'Sessions'), h('p', { class: 'empty' }, loadFailed(err, 'the realms')));
  });
  return { el };
}

// ---------------------------------------------------------- users view

function usersView(ctx) {
  const realm = ctx.realm;
  let params = new URLSearchParams();
  let req = 0;

  const search = h('input', {
    type: 'search', id: 'user-search', name: 'prefix', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'User id starts with…',
  });
  const onlyUnviewed = h('input', { type: 'checkbox', id: 'filter-unviewed' });
  const onlyActive = h('input', { type: 'checkbox', id: 'filter-active' });
  const { table: tbl, tbody } = table('users', 'Users of realm ' + realm + ', most recently active first',
    ['User', 'Last activity', 'Active sessions', 'Devices', 'Violations', 'Exempt']);
  const pagerSlot = h('div', { class: 'pager-slot' });

  // go changes the list's parameters: a new history entry, except while
  // typing in the search box.
  function go(changes, replace) {
    const next = Object.fromEntries(params);
    Object.assign(next, changes);
    const target = href.realm(realm, next);
    if (replace) {
      history.replaceState(null, '', target);
      load(new URLSearchParams(query(next)));
    } else {
      location.hash = target;
    }
  }

  let typing = null;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => go({ prefix: search.value, offset: '' }, true), 250);
  });
  const form = h('form', {
    class: 'toolbar', role: 'search', 'aria-label': 'Find users',
    on: {
      submit: (e) => {
        e.preventDefault();
        clearTimeout(typing);
        go({ prefix: search.value, offset: '' }, true);
      },
    },
  },
  h('div', { class: 'field' }, h('label', { for: 'user-search' }, 'Search by user id'), search),
  h('label', { class: 'check' }, onlyUnviewed, ' Unviewed violations only'),
  h('label', { class: 'check' }, onlyActive, ' With active sessions only'));
  onlyUnviewed.addEventListener('change', () => go({ violations: onlyUnviewed.checked ? 'unviewed' : '', offset: '' }));
  onlyActive.addEventListener('change', () => go({ active: onlyActive.checked ? 'true' : '', offset: '' }));

  const el = h('section', { class: 'view-users' },
    h('h1', {}, 'Users'),
    form,
    h('p', { class: 'muted sort-note' }, 'Sorted by last activity, newest first. Times are in your time zone.'),
    h('div', { class: 'table-wrap' }, tbl),
    pagerSlot);

  function row(u) {
    const n = Number(u.unviewed_violations) || 0;
    const marker = n > 0
      ? h('a', {
        class: 'violation-marker', href: href.user(realm, u.user, 'violations'),
        'aria-label': n + ' unviewed violation' + (n === 1 ? '' : 's') + ' of ' + u.user + ': open restriction history',
      }, icon('warning'), h('span', {}, n + ' unviewed'))
      : h('span', { class: 'muted' }, 'None');
    return h('tr', { 'data-user': u.user },
      td('User', h('a', { href: href.user(realm, u.user), class: 'user-link' }, u.user)),
      td('Last activity', timeEl(u.last_activity)),
      td('Active sessions', String(u.active_sessions || 0)),
      td('Devices', String(u.devices || 0)),
      td('Violations', marker),
      td('Exempt', exemptSwitch(ctx, realm, u.user, u.exempt, () => load(params))));
  }

  async function load(p) {
    params = p;
    const mine = ++req;
    // After a re-fetch, focus returns to the same control of the same row.
    const active = document.activeElement;
    const focusRow = active && tbody.contains(active) ? active.closest('tr[data-user]') : null;
    const focusUser = focusRow ? focusRow.dataset.user : null;
    const focusClass = active && active.classList.contains('exempt-toggle') ? 'exempt-toggle' : 'user-link';
    const prefix = p.get('prefix') || '';
    if (document.activeElement !== search) search.value = prefix;
    onlyUnviewed.checked = p.get('violations') === 'unviewed';
    onlyActive.checked = p.get('active') === 'true';
    fill(tbody, messageRow(6, 'Loading…', 'loading'));
    tbl.setAttribute('aria-busy', 'true');
    try {
      const page = await ctx.api.get('/' + seg(realm) + '/users' + query({
        prefix, offset: p.get('offset') || '', limit: PAGE_SIZE,
        violations: p.get('violations') || '', active: p.get('active') || '',
      }));
      if (!ctx.alive() || mine !== req) return;
      const users = Array.isArray(page.users) ? page.users : [];
      const filtered = prefix || p.get('violations') || p.get('active');
      fill(tbody, users.length ? users.map(row)
        : messageRow(6, filtered ? 'No users match.' : 'No sessions yet: no user of this realm has logged in.'));
      if (focusUser !== null) {
        const r = tbody.querySelector('tr[data-user="' + CSS.escape(focusUser) + '"] .' + focusClass);
        if (r) r.focus();
      }
      fill(pagerSlot, pager({ ...page, count: users.length }, (o) => go({ offset: o ? String(o) : '' }), 'users'));
    } catch (err) {
      if (!ctx.alive() || mine !== req) return;
      showError(err);
      fill(tbody, messageRow(6, loadFailed(err, 'the users'), 'error'));
      pagerSlot.replaceChildren();
    } finally {
      if (mine === req) tbl.removeAttribute('aria-busy');
    }
  }

  return {
    el,
    update(r) {
      if (!realmNames) loadRealms().then(() => ctx.alive() && setNav(realm, 'users')).catch(() => {});
      setNav(realm, 'users');
      load(r.params);
    },
  };
}

// ------------------------------------------------------- settings view

const IP_PRECISION = [
  ['full', 'Full address'],
  ['truncated', 'Truncated (IPv4 /24, IPv6 /48)'],
  ['none', 'None (no IP kept)'],
];

function settingsView(ctx) {
  const realm = ctx.realm;
  const path = '/' + seg(realm) + '/settings';
  const check = (id, label, help) => {
    const input = h('input', { type: 'checkbox', id, role: 'switch', 'aria-describedby': id + '-help' });
    return [input, h('div', { class: 'setting' },
      h('label', { class: 'check' }, input, ' ', label),
      h('p', { class: 'help', id: id + '-help' }, help))];
  };
  const [tracking, trackingRow] = check('setting-tracking', 'Tracking',
    'Off: nothing new is recorded and no limit is enforced; requests pass untouched.');
  const [geo, geoRow] = check('setting-geo', 'Geolocation',
    'Off: new sessions and devices get no location.');
  const [trail, trailRow] = check('setting-trail', 'Activity trail',
    'On: sessions keep their last visited paths, only for visitors who consented (see activity_trail in the Caddyfile).');
  const precision = h('select', { id: 'setting-ip-precision', 'aria-describedby': 'setting-ip-precision-help' },
    IP_PRECISION.map(([v, label]) => h('option', { value: v }, label)));
  const save = h('button', { type: 'submit', id: 'save-settings', class: 'button primary', disabled: true }, 'Save settings');
  const status = h('p', { class: 'loading' }, 'Loading…');

  const form = h('form', { class: 'settings', on: { submit: (e) => { e.preventDefault(); submit(); } } },
    trackingRow, geoRow,
    h('div', { class: 'setting' },
      h('label', { for: 'setting-ip-precision' }, 'IP precision'), ' ', precision,
      h('p', { class: 'help', id: 'setting-ip-precision-help' },
        'How much of each new IP address is kept. The location is looked up before truncation.')),
    trailRow,
    h('div', { class: 'actions' }, save));

  const el = h('section', { class: 'view-settings' },
    h('h1', {}, 'Settings'),
    h('p', { class: 'note' }, 'Changes apply to new data only; nothing recorded before is changed (not retroactive).'),
    status, form);

  function show(st) {
    tracking.checked = !!st.tracking;
    geo.checked = !!st.geolocation;
    trail.checked = !!st.activity_trail;
    precision.value = st.ip_precision || 'full';
    save.disabled = false;
    status.replaceChildren();
    status.hidden = true;
  }

  async function load() {
    try {
      const st = await ctx.api.get(path);
      if (ctx.alive()) show(st);
    } catch (err) {
      if (!ctx.alive()) return;
      showError(err);
      fill(status, loadFailed(err, 'the settings'));
      status.className = 'empty';
    }
  }

  async function submit() {
    save.disabled = true;
    try {
      const st = await ctx.api.send('PUT', path, {
        tracking: tracking.checked, geolocation: geo.checked,
        ip_precision: precision.value, activity_trail: trail.checked,
      });
      if (!ctx.alive()) return;
      show(st);
      banner('Settings saved. They apply to new data only.', 'info');
    } catch (err) {
      showError(err);
    }
    save.disabled = false;
    // Show the server's truth, not what was sent.
    load();
  }

  return {
    el,
    update() {
      setNav(realm, 'settings');
      load();
    },
  };
}

// ---------------------------------------------------------------- start

window.addEventListener('hashchange', route);
route();

// Unexpected failures still reach the admin, in the banner.
window.addEventListener('unhandledrejection', (e) => {
  if (e.reason instanceof ApiError) showError(e.reason);
});
