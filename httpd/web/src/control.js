// The operator's forms that act on the whole server: revoke a token
// (operator.token.revoke, answered by httpd at once) and shut down after a
// delay (operator.shutdown; every operator then gets server.shutdown { at },
// shown as a countdown by the caller). Both ask first, in a modal <dialog>
// whose Cancel has the focus, so Enter or Escape right away does nothing.
import { el } from './api.js';

// Resolves true when the operator confirms. One dialog for the page.
export function ask(text, okLabel) {
  let dlg = document.getElementById('confirm');
  if (!dlg) {
    dlg = el('dialog', { id: 'confirm', class: 'confirm', 'aria-labelledby': 'confirm-text' },
      el('form', { method: 'dialog' },
        el('p', { id: 'confirm-text' }),
        el('div', { class: 'confirm-buttons' },
          el('button', { value: 'cancel', id: 'confirm-cancel' }, 'Cancel'),
          el('button', { value: 'ok', id: 'confirm-ok', class: 'danger' }, 'OK'))));
    document.body.append(dlg);
  }
  dlg.querySelector('#confirm-text').textContent = text;
  dlg.querySelector('#confirm-ok').textContent = okLabel;
  dlg.returnValue = '';
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.showModal();
    dlg.querySelector('#confirm-cancel').focus();
  });
}

function result(node, r, okText) {
  node.textContent = r.error ? r.error : okText;
  node.className = `form-result ${r.error ? 'bad' : 'good'}`;
}

export class Control {
  constructor(root, con) {
    this.con = con;
    const token = el('input', { id: 'revoke-token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
    const revokeOut = el('p', { id: 'revoke-result', class: 'form-result', role: 'status' });
    const revoke = el('form', { class: 'panel', id: 'revoke-form', 'aria-labelledby': 'revoke-h' },
      el('h3', { id: 'revoke-h' }, 'Revoke a token'),
      el('p', { class: 'hint' }, 'Every connection that signed in with it closes at once (3004), on every socket; the token is refused until the configuration is reloaded with it.'),
      el('label', { for: 'revoke-token' }, 'Token'), token,
      el('button', { type: 'submit', class: 'danger' }, 'Revoke…'), revokeOut);
    revoke.addEventListener('submit', async (e) => {
      e.preventDefault();
      const t = token.value.trim();
      if (!t || !(await ask('Revoke this token? Every connection that uses it closes now.', 'Revoke'))) return;
      revokeOut.textContent = 'Revoking…';
      const r = await con.request('operator.token.revoke', { token: t });
      result(revokeOut, r, 'Revoked: its connections are closed, and it is refused from now on.');
      if (!r.error) token.value = '';
    });

    const delay = el('input', { id: 'shutdown-in', type: 'number', min: 0, max: 3600, step: 1, value: 60, required: true });
    this.shutdownOut = el('p', { id: 'shutdown-result', class: 'form-result', role: 'status' });
    const shutdown = el('form', { class: 'panel', id: 'shutdown-form', 'aria-labelledby': 'shutdown-h' },
      el('h3', { id: 'shutdown-h' }, 'Shut down'),
      el('p', { class: 'hint' }, 'Proctors and sentinels are told at once; after the delay every stage stops in order.'),
      el('label', { for: 'shutdown-in' }, 'Delay (seconds)'), delay,
      el('button', { type: 'submit', class: 'danger' }, 'Shut down…'), this.shutdownOut);
    shutdown.addEventListener('submit', async (e) => {
      e.preventDefault();
      const s = Number(delay.value);
      if (!Number.isInteger(s) || s < 0 || s > 3600) {
        result(this.shutdownOut, { error: 'The delay is a whole number of seconds from 0 to 3600.' });
        return;
      }
      if (!(await ask(`Shut the whole server down in ${s} s? Every proctor and sentinel is disconnected then.`, 'Shut down'))) return;
      this.shutdownOut.textContent = 'Asking…';
      const r = await con.request('operator.shutdown', { in: s });
      result(this.shutdownOut, r, `The server shuts down at ${new Date(r.at).toLocaleTimeString()}.`);
    });
    root.append(revoke, shutdown);
  }
}
