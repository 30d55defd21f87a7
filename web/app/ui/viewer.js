// The photo viewer: a modal <dialog> with the original image, its name, Download and Close.
// Esc, the close button or a click beside the image close it, and focus returns to the photo
// that opened it. The original is fetched through the chat's media cache (with the token).
import { h } from './dom.js';
import { icon } from './icons.js';
import { errorText } from './format.js';

/** Opens the viewer for `attachment` (an image). `download(attachment, button)` saves it. */
export function openViewer({ attachment: a, cache, download, toast }) {
  const opener = document.activeElement;
  const name = a.name || 'Photo';
  const img = h('img', { class: 'viewer-img', alt: name });
  const status = h('p', { class: 'viewer-status', 'aria-live': 'polite' }, 'Loading…');
  const close = h('button', {
    type: 'button', class: 'icon-btn viewer-close', 'aria-label': 'Close viewer', title: 'Close (Esc)',
    onclick: () => dialog.close(),
  }, icon('close'));
  const save = h('button', {
    type: 'button', class: 'btn btn-small viewer-download', onclick: () => download(a, save),
  }, icon('download', 'sm'), 'Download');
  const dialog = h('dialog', {
    class: 'viewer', 'aria-label': `Photo ${name}`,
    onclick: (e) => { if (e.target === dialog || e.target.classList.contains('viewer-body')) dialog.close(); },
  },
  h('div', { class: 'viewer-bar' }, h('span', { class: 'viewer-name', dir: 'auto' }, name), save, close),
  h('div', { class: 'viewer-body' }, img, status));
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener?.isConnected) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
  cache.url(a.id, 'file').then(
    (url) => {
      img.addEventListener('load', () => { status.textContent = ''; dialog.classList.add('loaded'); }, { once: true });
      img.src = url;
    },
    (err) => {
      status.textContent = `Could not load the photo: ${errorText(err)}`;
      toast?.(errorText(err), 'error');
    },
  );
  return { close: () => dialog.close() };
}
