/** Escaping for text placed in HTML or SVG markup (element content and quoted attribute values). */
const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

const SPECIAL = /[&<>"']/;

export function escapeMarkup(text: string): string {
  // Most labels need no escaping; testing first avoids a replace per cell in 30,000-cell heatmaps.
  return SPECIAL.test(text) ? text.replace(/[&<>"']/g, (c) => ENTITIES[c]) : text;
}

/** Whitespace made visible, so newline and tab tokens do not render as nothing. */
export function visibleToken(text: string): string {
  return text.replace(/\n/g, '⏎').replace(/\t/g, '⇥');
}
