// The "your sessions" page: a logged-in user lists their own active
// sessions and ends the ones on other devices.
//
// API (the self-service path from <meta name="sessions-api">, with its
// trailing slash): GET <path> → {sessions, current, user, total,
// next_offset}; DELETE <path><id> ends a session (409 for the current one).
//
// Hooks used by the browser tests (keep them stable):
//   #sessions li[data-session="<id>"] with button.end-session
//   .this-device on the current session · dialog#explain, #explain-close
//   #banner (role=alert) · a#back (when a back link is configured)

import {
  h, fill, apiClient, seg, query, banner, showError, timeEl, deviceBadge, browserText, osText, locationText,
  ipText,
} from './ui.js';

const meta = document.querySelector('meta[name="sessions-api"]');
const api = apiClient(meta ? meta.getAttribute('content') : '/sessions/');
const listEl = document.getElementById('sessions');
const statusEl = document.getElementById('status');
const moreSlot = document.getElementById('more-slot');
const explain = document.getElementById('explain');

let user = '';

// fail shows an error in the banner, in words for end users.
function fail(err) {
  if (err && err.storeDown) {
    banner('Your sessions cannot be shown or changed right now: the service that keeps them is unreachable. ' +
      'Try again in a moment.', 'error');
  } else {
    showError(err);
  }
}
let total = 0;

// explainCurrent tells why the current session is not ended here; focus
// goes back to the button that asked once the dialog closes.
let opener = null;
document.getElementById('explain-close').addEventListener('click', () => explain.close());
explain.addEventListener('close', () => {
  if (opener && opener.isConnected) opener.focus();
  opener = null;
});

function explainCurrent(button) {
  opener = button;
  explain.showModal();
  document.getElementById('explain-close').focus();
}

function showStatus() {
  const who = user ? 'Signed in as ' + user + '. ' : '';
  const n = total + ' active session' + (total === 1 ? '' : 's') + '.';
  fill(statusEl, who + n);
  statusEl.className = 'muted';
}

// item renders one session as a list entry.
function item(sess, current) {
  const isCurrent = sess.current === true || sess.id === current;
  const what = browserText(sess.agent) + ' on ' + osText(sess.agent);
  const end = h('button', {
    type: 'button', class: 'button end-session' + (isCurrent ? '' : ' danger'),
    'aria-label': (isCurrent ? 'End this session (the device you are using): ' : 'End session: ') + what,
  }, isCurrent ? 'End…' : 'End session');
  const li = h('li', { class: 'session' + (isCurrent ? ' current' : ''), 'data-session': sess.id },
    h('div', { class: 'session-device' }, deviceBadge(sess.agent && sess.agent.device_type)),
    h('div', { class: 'session-main' },
      h('p', { class: 'session-title' }, h('strong', {}, what),
        isCurrent ? h('span', { class: 'badge this-device' }, 'This device') : null),
      h('dl', { class: 'session-facts' },
        h('div', {}, h('dt', {}, 'Approximate location'), h('dd', {}, locationText(sess.location))),
        h('div', {}, h('dt', {}, 'IP address'), h('dd', { class: 'mono' }, ipText(sess.ip))),
        h('div', {}, h('dt', {}, 'Last activity'), h('dd', {}, timeEl(sess.last_seen))),
        h('div', {}, h('dt', {}, 'Signed in'), h('dd', {}, timeEl(sess.started_at))))),
    h('div', { class: 'session-action' }, end));

  end.addEventListener('click', async () => {
    if (isCurrent) {
      explainCurrent(end);
      return;
    }
    end.disabled = true;
    try {
      await api.send('DELETE', '/' + seg(sess.id));
      removeItem(li);
      banner('The session on ' + what + ' was ended.', 'info');
    } catch (err) {
      end.disabled = false;
      if (err.status === 409) {
        explainCurrent(end);
      } else if (err.status === 404) {
        removeItem(li);
        banner('That session had already ended.', 'info');
      } else {
        fail(err);
      }
    }
  });
  return li;
}

// removeItem drops an ended session and keeps focus on the list.
function removeItem(li) {
  const next = li.nextElementSibling || li.previousElementSibling;
  li.remove();
  total = Math.max(0, total - 1);
  showStatus();
  const target = next && next.querySelector('button');
  if (target) target.focus();
  if (!listEl.children.length) listEl.appendChild(h('li', { class: 'empty' }, 'No sessions yet.'));
}

// load fetches a page of sessions; more pages are appended.
async function load(offset) {
  if (!offset) statusEl.className = 'loading';
  try {
    const page = await api.get('/' + query({ offset: offset || '' }));
    user = typeof page.user === 'string' ? page.user : '';
    total = Number(page.total) || 0;
    const list = Array.isArray(page.sessions) ? page.sessions : [];
    if (!offset) listEl.replaceChildren();
    // This device first, then the others newest first.
    const isCurrent = (x) => x.current === true || x.id === page.current;
    const ordered = [...list.filter(isCurrent), ...list.filter((x) => !isCurrent(x))];
    for (const sess of ordered) listEl.appendChild(item(sess, page.current));
    if (!listEl.children.length) listEl.appendChild(h('li', { class: 'empty' }, 'No sessions yet.'));
    showStatus();
    moreSlot.replaceChildren();
    if (page.next_offset !== undefined && page.next_offset !== null) {
      moreSlot.appendChild(h('button', {
        type: 'button', id: 'more-sessions', class: 'button',
        on: { click: () => load(Number(page.next_offset)) },
      }, 'Show more'));
    }
  } catch (err) {
    fail(err);
    fill(statusEl, 'Your sessions could not be loaded' + (err.storeDown ? ': the service that keeps them is unreachable.' : '.') + ' Try again in a moment.');
    statusEl.className = 'empty';
  }
}

load(0);
