// Icons: empty spans masked with an SVG from app.css (`.i-<name>`), tinted with currentColor.
// Always decorative: the control that holds one carries the accessible name.
import { h } from './dom.js';

export function icon(name, size = '') {
  return h('span', { class: `i i-${name}${size ? ` i-${size}` : ''}`, 'aria-hidden': 'true' });
}
