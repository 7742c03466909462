/**
 * Where the Hugging Face hub is and how to reach it, read as huggingface_hub reads it, so the two tools share
 * one cache and one login: HF_ENDPOINT, HF_HUB_CACHE / HF_HOME, HF_TOKEN (or the token file `huggingface-cli
 * login` writes), HF_HUB_OFFLINE.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export interface HubEnvironment {
  endpoint: string;
  /** The hub cache (models--org--name/{blobs,snapshots,refs}). */
  cacheDir: string;
  token?: string;
  /** Where the token came from, for messages: 'HF_TOKEN', a file path, or 'the lrpLens.hubToken setting'. */
  tokenSource?: string;
  offline: boolean;
}

const TRUE = ['1', 'true', 'yes', 'on'];

function hfHome(): string {
  return process.env.HF_HOME ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface');
}

export function hubCacheDir(): string {
  return process.env.HF_HUB_CACHE ?? process.env.HUGGINGFACE_HUB_CACHE ?? join(hfHome(), 'hub');
}

/** The token file huggingface_hub writes on login ($HF_TOKEN_PATH, else $HF_HOME/token). */
export function tokenFilePath(): string {
  return process.env.HF_TOKEN_PATH ?? join(hfHome(), 'token');
}

function readToken(): { token?: string; source?: string } {
  const env = process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
  if (env?.trim()) return { token: env.trim(), source: 'HF_TOKEN' };
  const file = tokenFilePath();
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token) return { token, source: file };
  }
  return {};
}

export function isOfflineEnv(): boolean {
  return TRUE.includes((process.env.LRP_LENS_OFFLINE ?? process.env.HF_HUB_OFFLINE ?? '').toLowerCase());
}

export function hubEnvironment(overrides: { offline?: boolean } = {}): HubEnvironment {
  const { token, source } = readToken();
  return {
    endpoint: (process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, ''),
    cacheDir: hubCacheDir(),
    token,
    tokenSource: source,
    offline: overrides.offline ?? isOfflineEnv(),
  };
}
