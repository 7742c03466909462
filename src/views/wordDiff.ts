/**
 * Word-level diff of two texts (before / after pruning): the longest common subsequence over words, so the
 * panels can mark what a pruned model says differently. Whitespace stays attached to the word before it, so
 * joining the parts of one side gives that side's text back exactly.
 */
export type DiffOp = 'same' | 'removed' | 'added';

export interface DiffPart {
  op: DiffOp;
  text: string;
}

/** Words with their trailing whitespace ("Once ", "upon ", "a ", "time."); leading whitespace is its own part. */
export function splitWords(text: string): string[] {
  return text.match(/^\s+|\S+\s*/g) ?? [];
}

/** LCS table over the words, filled from the end: lcs[i][j] = LCS length of a[i..] and b[j..]. */
function lcsTable(a: readonly string[], b: readonly string[], eq: (x: string, y: string) => boolean): Uint32Array[] {
  const t = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) t[i][j] = eq(a[i], b[j]) ? t[i + 1][j + 1] + 1 : Math.max(t[i + 1][j], t[i][j + 1]);
  }
  return t;
}

function push(parts: DiffPart[], op: DiffOp, text: string): void {
  const last = parts[parts.length - 1];
  if (last && last.op === op) last.text += text;
  else parts.push({ op, text });
}

/**
 * The diff from `before` to `after`: runs of same / removed / added words (adjacent runs of one kind merged).
 * Words compare without their trailing whitespace. Texts are capped at `maxWords` words each (the table is
 * quadratic); the rest of a longer text is compared as one word.
 */
export function wordDiff(before: string, after: string, maxWords = 2000): DiffPart[] {
  const a = capWords(splitWords(before), maxWords);
  const b = capWords(splitWords(after), maxWords);
  const eq = (x: string, y: string) => x.trimEnd() === y.trimEnd();
  const t = lcsTable(a, b, eq);
  const parts: DiffPart[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (eq(a[i], b[j])) {
      push(parts, 'same', b[j]);
      i++;
      j++;
    } else if (t[i + 1][j] >= t[i][j + 1]) push(parts, 'removed', a[i++]);
    else push(parts, 'added', b[j++]);
  }
  while (i < a.length) push(parts, 'removed', a[i++]);
  while (j < b.length) push(parts, 'added', b[j++]);
  return parts;
}

function capWords(words: string[], max: number): string[] {
  return words.length <= max ? words : [...words.slice(0, max - 1), words.slice(max - 1).join('')];
}

/** The two sides of a diff: the parts the before text shows (same + removed) and the after text (same + added). */
export function diffSides(parts: readonly DiffPart[]): { before: DiffPart[]; after: DiffPart[] } {
  return { before: parts.filter((p) => p.op !== 'added'), after: parts.filter((p) => p.op !== 'removed') };
}

/** Fraction of the after text's words that are unchanged (1: identical). */
export function sameFraction(parts: readonly DiffPart[]): number {
  let same = 0;
  let total = 0;
  for (const p of parts) {
    if (p.op === 'removed') continue;
    const n = splitWords(p.text).filter((w) => w.trim()).length;
    total += n;
    if (p.op === 'same') same += n;
  }
  return total ? same / total : 1;
}
