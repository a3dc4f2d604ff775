// Shared helpers of the dashboard and the "your sessions" page: building
// DOM safely, talking to the JSON API, the banner, and formatting.
//
// Safety rule: every string that comes from the API (user ids, user
// agents, cities, paths...) is hostile. It only ever reaches the page as
// a text node or an attribute value set with setAttribute; nothing here
// parses HTML. The page's CSP also forbids inline script and style.

// ---------------------------------------------------------------- DOM

const SVG_NS = 'http://www.w3.org/2000/svg';

// append adds children (nodes, strings, numbers, arrays; null and false
// are skipped) to parent. Strings become text nodes, never markup.
function append(parent, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(parent, c);
    else if (c instanceof Node) parent.appendChild(c);
    else parent.appendChild(document.createTextNode(String(c)));
  }
  return parent;
}

// setAttrs applies attrs to el. Keys: "class", "dataset"-style "data-*",
// aria-*, plain attributes, "on" (an object of event listeners) and a few
// properties (checked, disabled, value, hidden) set as properties.
// Inline styles and on* attributes are refused by design.
function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === 'style' || /^on/i.test(k)) {
      throw new Error('refusing attribute ' + k);
    } else if (k === 'checked' || k === 'value' || k === 'disabled' || k === 'hidden') {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  return el;
}

// h builds an HTML element: h('td', {class: 'x'}, 'text', child...).
export function h(tag, attrs, ...children) {
  return append(setAttrs(document.createElement(tag), attrs), children);
}

// s builds an SVG element, like h.
export function s(tag, attrs, ...children) {
  return append(setAttrs(document.createElementNS(SVG_NS, tag), attrs), children);
}

// fill empties el and appends children to it.
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// --------------------------------------------------------------- icons

// Icon shapes: 24x24 stroke paths, drawn in currentColor.
const ICONS = {
  desktop: ['M3 4h18v12H3z', 'M8 20h8', 'M12 16v4'],
  mobile: ['M7 2h10v20H7z', 'M11 18h2'],
  tablet: ['M4 3h16v18H4z', 'M11 18h2'],
  unknown: ['M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z', 'M9.5 9a2.5 2.5 0 1 1 3.5 2.3c-.7.3-1 .9-1 1.7', 'M12 17h.01'],
  warning: ['M12 3L2 21h20z', 'M12 10v5', 'M12 18h.01'],
  close: ['M6 6l12 12', 'M18 6L6 18'],
};

// icon returns an inline SVG icon, hidden from assistive technology (the
// text next to it says the same).
export function icon(name) {
  const paths = ICONS[name] || ICONS.unknown;
  return s('svg', {
    class: 'icon icon-' + (ICONS[name] ? name : 'unknown'), viewBox: '0 0 24 24', width: 20, height: 20,
    fill: 'none', stroke: 'currentColor', 'stroke-width': 2, 'stroke-linecap': 'round',
    'stroke-linejoin': 'round', 'aria-hidden': 'true', focusable: 'false',
  }, paths.map((d) => s('path', { d })));
}

// deviceType normalises the API's device types: agent.device_type is
// mobile, tablet or desktop; the activity API says Mobile, Tablet or Web.
export function deviceType(t) {
  const v = String(t || '').toLowerCase();
  if (v === 'mobile' || v === 'tablet') return v;
  if (v === 'desktop' || v === 'web') return 'desktop';
  return 'unknown';
}

const DEVICE_LABELS = { desktop: 'Computer', mobile: 'Phone', tablet: 'Tablet', unknown: 'Unknown device' };

// deviceBadge is a device type icon with its label.
export function deviceBadge(t) {
  const kind = deviceType(t);
  return h('span', { class: 'device' }, icon(kind), h('span', { class: 'device-label' }, DEVICE_LABELS[kind]));
}

// ----------------------------------------------------------------- API

// ApiError is a failed API call: status 0 when the server was not reached.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  // storeDown: the server says its session store is unreachable.
  get storeDown() {
    return this.status === 503;
  }
}

export const STORE_DOWN = 'The session store is unreachable, so sessions cannot be shown or changed right now. ' +
  'Nothing was lost; try again in a moment.';

// apiClient talks to the JSON API under base (no trailing slash needed).
// Paths are built by the caller from already-encoded segments (see seg).
export function apiClient(base) {
  const root = String(base || '').replace(/\/+$/, '');
  async function call(method, path, body) {
    if (hasDotSegment(path)) {
      // The browser would resolve it away and hit another endpoint.
      throw new ApiError(0, 'This id cannot be used in a URL ("." and ".." are path steps), so it cannot be shown or changed here.');
    }
    const headers = { Accept: 'application/json' };
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (method !== 'GET' && method !== 'HEAD') {
      // The server refuses state changes without this header (CSRF).
      headers['X-Sessions-CSRF'] = '1';
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
    }
    let res;
    try {
      res = await fetch(root + path, init);
    } catch (e) {
      throw new ApiError(0, 'The server could not be reached. Check your connection and try again.');
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (e) {
        data = null;
      }
    }
    if (!res.ok) {
      const msg = data && typeof data.error === 'string' && data.error
        ? data.error : 'Request failed (HTTP ' + res.status + ').';
      throw new ApiError(res.status, msg);
    }
    if (data === null) throw new ApiError(res.status, 'The server sent an answer that is not JSON.');
    return data;
  }
  return {
    url: (path) => root + path,
    get: (path) => call('GET', path),
    send: (method, path, body) => call(method, path, body),
  };
}

// seg encodes one path segment (a realm, user or id may hold "/", "%",
// spaces, anything).
export function seg(v) {
  return encodeURIComponent(String(v));
}

// isDotId: "." and ".." cannot be path segments. Browsers resolve them,
// even percent-encoded (%2E), so users/./sessions would reach
// users/sessions: another user. No request is ever made with one.
export function isDotId(v) {
  return v === '.' || v === '..';
}

function hasDotSegment(path) {
  return String(path).split('?')[0].split('/').some((p) => /^(\.|%2e){1,2}$/i.test(p));
}

// query builds "?a=1&b=2" from an object, skipping empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const str = q.toString();
  return str ? '?' + str : '';
}

// -------------------------------------------------------------- banner

// banner shows a message in #banner (role=alert). kind: error or info.
export function banner(message, kind = 'error') {
  const el = document.getElementById('banner');
  if (!el) return;
  if (!message) {
    el.hidden = true;
    el.replaceChildren();
    return;
  }
  el.className = 'banner banner-' + kind;
  fill(el,
    h('span', { class: 'banner-text' }, message),
    h('button', {
      type: 'button', class: 'banner-close', 'aria-label': 'Dismiss message',
      on: { click: () => banner('') },
    }, icon('close')));
  el.hidden = false;
}

// loadFailed is the placeholder text of something that did not load (the
// banner says why).
export function loadFailed(err, what) {
  return 'Could not load ' + what + (err && err.storeDown ? ': the session store is unreachable.' : '.');
}

// showError puts an error (ApiError or other) in the banner.
export function showError(err) {
  if (err instanceof ApiError && err.storeDown) banner(STORE_DOWN, 'error');
  else banner(err && err.message ? err.message : String(err), 'error');
}

// ---------------------------------------------------------- formatting

// parseTime reads an RFC 3339 time; the zero Go time and junk are null.
export function parseTime(v) {
  if (!v) return null;
  const d = new Date(v);
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() <= 1) return null;
  return d;
}

// fmtTime formats an RFC 3339 time in timeZone (the viewer's if absent);
// falls back to the viewer's zone when the zone is unknown to the browser.
export function fmtTime(v, timeZone) {
  const d = parseTime(v);
  if (!d) return '—';
  const opts = { dateStyle: 'medium', timeStyle: 'short' };
  try {
    return new Intl.DateTimeFormat(undefined, timeZone ? { ...opts, timeZone } : opts).format(d);
  } catch (e) {
    return new Intl.DateTimeFormat(undefined, opts).format(d);
  }
}

// timeEl is a <time> with a machine-readable datetime.
export function timeEl(v, timeZone) {
  const d = parseTime(v);
  if (!d) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: d.toISOString() }, fmtTime(v, timeZone));
}

// fmtDuration formats seconds as "2h 05m", "4m 10s", "12s".
export function fmtDuration(sec) {
  const n = Math.max(0, Math.round(Number(sec) || 0));
  const hh = Math.floor(n / 3600);
  const mm = Math.floor((n % 3600) / 60);
  const ss = n % 60;
  if (hh) return hh + 'h ' + String(mm).padStart(2, '0') + 'm';
  if (mm) return mm + 'm ' + String(ss).padStart(2, '0') + 's';
  return ss + 's';
}

// joinText joins the non-empty parts with sep.
export function joinText(parts, sep = ' ') {
  return parts.filter((p) => p !== undefined && p !== null && p !== '').join(sep);
}

// browserText and osText: "Chrome 120.0", "Windows 10", or "Unknown".
export function browserText(agent) {
  return joinText([agent && agent.browser, agent && agent.browser_version]) || 'Unknown browser';
}

export function osText(agent) {
  return joinText([agent && agent.os, agent && agent.os_version]) || 'Unknown OS';
}

// locationText: "City, Region, Country" or "Unknown location".
export function locationText(loc) {
  return joinText([loc && loc.city, loc && loc.region, loc && loc.country], ', ') || 'Unknown location';
}

// ipText: the IP as given ("" when the realm keeps none).
export function ipText(ip) {
  return ip || 'Not recorded';
}

// viewerZone is the browser's IANA time zone.
export function viewerZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch (e) {
    return 'UTC';
  }
}

// cell helpers for responsive tables: each td carries its column name in
// data-label, which the phone layout shows in front of the value.
export function td(label, ...children) {
  return h('td', { 'data-label': label }, ...children);
}

// messageRow is a full-width row: Loading…, No sessions yet, errors.
export function messageRow(colspan, text, kind = 'empty') {
  return h('tr', { class: 'message-row ' + kind }, h('td', { colspan }, text));
}

// table builds a table with a caption (visually hidden when quiet) and
// column headers; it returns the table and its tbody.
export function table(id, caption, columns) {
  const tbody = h('tbody');
  const t = h('table', { id, class: 'data' },
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
    tbody);
  return { table: t, tbody };
}
