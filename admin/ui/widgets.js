// Dashboard widgets shared by its views (dashboard.js, user.js,
// activity.js): route hrefs, the pager, the exempt switch and the
// confirmation dialog.

import { h, seg, query, banner, showError } from './ui.js';

export const PAGE_SIZE = 50;

// href builds the dashboard's hash routes; every segment is encoded.
export const href = {
  home: () => '#/',
  realm: (r, params = {}) => '#/realm/' + seg(r) + query(params),
  settings: (r) => '#/realm/' + seg(r) + '/settings',
  user: (r, u, tab = 'history', params = {}) => '#/realm/' + seg(r) + '/user/' + seg(u) + '/' + tab + query(params),
};

// userPath is the API path of a user: /<realm>/users/<user>.
export function userPath(realm, user) {
  return '/' + seg(realm) + '/users/' + seg(user);
}

// pager renders Previous/Next for a paged answer (offset, limit, total,
// next_offset) and calls go(offset) to move.
export function pager(page, go, noun) {
  const offset = Number(page.offset) || 0;
  const count = Number(page.count) || 0;
  const total = Number(page.total) || 0;
  const limit = Number(page.limit) || PAGE_SIZE;
  const hasNext = page.next_offset !== undefined && page.next_offset !== null;
  const status = total === 0 ? '' : 'Showing ' + (offset + 1) + '–' + (offset + count) + ' of ' + total + ' ' + noun;
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('button', {
      type: 'button', id: 'prev-page', class: 'button', disabled: offset === 0,
      on: { click: () => go(Math.max(0, offset - limit)) },
    }, '‹ Previous'),
    h('span', { class: 'pager-status', 'aria-live': 'polite' }, status),
    h('button', {
      type: 'button', id: 'next-page', class: 'button', disabled: !hasNext,
      on: { click: () => go(Number(page.next_offset)) },
    }, 'Next ›'));
}

// exemptSwitch is the checkbox that turns a user's limit checks off;
// after the change, done() re-fetches the server's truth. text, if given,
// is the switch's visible label; else it is labelled for screen readers.
export function exemptSwitch(ctx, realm, user, exempt, done, text) {
  const input = h('input', {
    type: 'checkbox', class: 'exempt-toggle', role: 'switch', checked: !!exempt,
    'aria-label': text ? null : 'Exempt ' + user + ' from limits',
  });
  // Not disabled while busy (that would drop keyboard focus): a second
  // change meanwhile is undone instead.
  let busy = false;
  input.addEventListener('change', async () => {
    if (busy) {
      input.checked = !input.checked;
      return;
    }
    busy = true;
    input.setAttribute('aria-busy', 'true');
    try {
      await ctx.api.send('PUT', userPath(realm, user) + '/exempt', { exempt: input.checked });
      banner(input.checked ? user + ' is now exempt from limits.' : user + ' is subject to limits again.', 'info');
    } catch (err) {
      input.checked = !input.checked;
      showError(err);
    }
    busy = false;
    input.removeAttribute('aria-busy');
    done();
  });
  return h('label', { class: 'switch' }, input, h('span', { class: 'switch-track', 'aria-hidden': 'true' }),
    text ? h('span', { class: 'switch-text' }, text) : null);
}

// confirmDialog asks a yes/no question in dialog#confirm (a modal: focus
// stays inside; Escape and #confirm-no say no). Resolves true on yes.
export function confirmDialog(title, text, yesLabel) {
  const dlg = document.getElementById('confirm');
  const yes = document.getElementById('confirm-yes');
  const no = document.getElementById('confirm-no');
  const opener = document.activeElement;
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  yes.textContent = yesLabel;
  return new Promise((resolve) => {
    const onYes = () => dlg.close('yes');
    const onNo = () => dlg.close('no');
    yes.addEventListener('click', onYes);
    no.addEventListener('click', onNo);
    dlg.addEventListener('close', () => {
      yes.removeEventListener('click', onYes);
      no.removeEventListener('click', onNo);
      if (opener && opener.isConnected && opener.focus) opener.focus();
      resolve(dlg.returnValue === 'yes');
    }, { once: true });
    dlg.returnValue = '';
    dlg.showModal();
    no.focus(); // the safe choice is the default
  });
}
