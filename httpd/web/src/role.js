// What the token may do, from relay's registration ack (`role`, see
// docs/protocol.md) or the console's acceptance (an operator). Exports
// (export.mp4) need the archivist or operator role: a proctor's page hides
// the download links and says why, instead of links that end in a 403 the
// browser drops without a word.
import { el } from './api.js';

const WHY = 'Downloading a recording needs an archivist\'s token; this one is a proctor\'s. Ask an archivist for the export.';
let current = '';

export function applyRole(role, historyRoot) {
  current = role || '';
  document.documentElement.dataset.role = current;
  if (!historyRoot.querySelector('.export-why')) {
    (historyRoot.querySelector('.export') || historyRoot).prepend(el('p', { class: 'export-why', role: 'note' }, WHY));
  }
}

// A download link followed anyway (a key, a link added later) is stopped with the reason.
export function guardExports(say) {
  document.addEventListener(
    'click',
    (e) => {
      const a = e.target.closest ? e.target.closest('a[href*="/export.mp4"]') : null;
      if (!a || current !== 'proctor') return;
      e.preventDefault();
      say(WHY);
    },
    true
  );
}
