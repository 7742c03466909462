/** Hub references as users type them: `org/name`, `org/name@branch`, `org/name@tag` or `org/name@<commit>`. */
import { existsSync } from 'node:fs';
import { LrpLensError } from '../errors';

export interface HubRef {
  /** `org/name`. */
  repo: string;
  /** Branch, tag or commit; `main` when none is given. */
  revision: string;
}

const HUB_ID = /^[\w.-]+\/[\w.-]+(@[\w./-]+)?$/;
export const COMMIT = /^[0-9a-f]{40}$/;

/** A string that names a hub repo rather than a local folder (a folder of that name wins). */
export function looksLikeHubId(ref: string): boolean {
  return HUB_ID.test(ref) && !existsSync(ref) && !ref.startsWith('.');
}

export function parseHubRef(ref: string): HubRef {
  if (!HUB_ID.test(ref))
    throw new LrpLensError('bad-argument', `'${ref}' is not a hub id: write org/name, optionally with @branch, @tag or @commit.`);
  const at = ref.indexOf('@');
  return at < 0 ? { repo: ref, revision: 'main' } : { repo: ref.slice(0, at), revision: ref.slice(at + 1) };
}

export function formatHubRef(repo: string, revision: string): string {
  return `${repo}@${revision}`;
}
