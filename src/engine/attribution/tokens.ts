/** Token offsets into the prompt and target-text → token-id resolution. */
import { LrpLensError } from '../errors';
import type { TokenizerLike } from '../runtime/model';
import type { TokenInfo } from './result';

/**
 * Offsets by incremental decoding: the text of tokens [0..i] decoded without special tokens ends where
 * token i ends. Where the decoded text is not a prefix of the prompt (normalising tokenizers), offsets fall
 * back to the decoded text itself.
 */
export function tokenOffsets(tok: TokenizerLike, ids: number[], prompt: string): TokenInfo[] {
  const out: TokenInfo[] = [];
  let prev = 0;
  for (let i = 0; i < ids.length; i++) {
    const decoded = tok.decode(ids.slice(0, i + 1), { skip_special_tokens: true });
    let end = decoded.length;
    if (!prompt.startsWith(decoded)) {
      // Byte-fallback tokens mid-character decode to U+FFFD; hold the offset until the character completes.
      end = decoded.endsWith('\uFFFD') ? prev : Math.min(Math.max(prev, commonPrefix(prompt, decoded)), prompt.length);
    }
    end = Math.max(end, prev);
    const text = end > prev ? prompt.slice(prev, end) : tok.decode([ids[i]], { skip_special_tokens: false });
    out.push({ id: ids[i], text, start: prev, end });
    prev = end;
  }
  return out;
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** The single token that `text` adds after `prompt`, e.g. " Lily" after "...named". */
export function resolveTargetToken(tok: TokenizerLike, prompt: string, text: string, vocabSize: number): number {
  const base = tok.encode(prompt);
  const full = tok.encode(prompt + text);
  if (full.length === base.length + 1 && base.every((id, i) => full[i] === id)) return full[full.length - 1];
  const alone = tok.encode(text, { add_special_tokens: false });
  if (alone.length === 1 && alone[0] < vocabSize) return alone[0];
  throw new LrpLensError(
    'unknown-token',
    `Target '${text}' is not a single token of this tokenizer (it splits into ${JSON.stringify(alone)}). Use --target-id, or a text that is one token.`,
  );
}

export function checkTokenId(id: number, vocabSize: number, what: string): number {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw new LrpLensError('unknown-token', `${what} id ${id} is outside the vocabulary (0..${vocabSize - 1}).`);
  }
  return id;
}
