/** Escaping for text placed in HTML or SVG markup (element content and quoted attribute values). */
const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeMarkup(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

/** Whitespace made visible, so newline and tab tokens do not render as nothing. */
export function visibleToken(text: string): string {
  return text.replace(/\n/g, '⏎').replace(/\t/g, '⇥');
}
