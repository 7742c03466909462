/**
 * A hub model as a local folder: resolves `org/name@revision` to a commit, picks the precision variant, and
 * downloads what attribution needs (config, tokenizer, the variant's .onnx and its external data) through
 * @huggingface/hub into the shared hub cache. Offline, or when the hub cannot be reached, the cache serves.
 */
import { HubApiError, downloadFile, listFiles, modelInfo } from '@huggingface/hub';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { LrpLensError } from '../errors';
import { externalFiles } from '../onnx/externalData';
import type { ProgressListener } from '../progress';
import { downloadBlob } from './blobDownload';
import type { ExpectedContent } from './blobDownload';
import { blobPath, linkIntoSnapshot, readRef, repoFolder, snapshotDir, snapshotFiles, writeRef } from './hubCache';
import { hubEnvironment } from './hubEnvironment';
import type { HubEnvironment } from './hubEnvironment';
import { COMMIT, parseHubRef } from './hubRef';
import { chooseVariant, listVariants } from './variants';
import type { Dtype, Variant } from './variants';

export interface HubOptions {
  dtype?: Dtype;
  offline?: boolean;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

/** Where a hub model came from: recorded (as `repo@commit`) in every report and mask manifest. */
export interface HubSource {
  repo: string;
  /** As asked: branch, tag or commit. */
  revision: string;
  commit: string;
  dtype: Dtype;
  /** The variant's model file, e.g. `onnx/model_fp16.onnx`. */
  file: string;
  endpoint: string;
}

export interface HubModel {
  /** The snapshot folder (transformers.js layout). */
  dir: string;
  onnxPath: string;
  hub: HubSource;
  /** Bytes fetched in this call (0: all from the cache). */
  downloaded: number;
}

export interface RemoteFile {
  path: string;
  size: number;
  oid?: string;
  lfs?: { oid: string; size: number };
}

const REQUIRED = ['config.json', 'tokenizer.json', 'tokenizer_config.json'];
const OPTIONAL = ['generation_config.json', 'special_tokens_map.json'];
/** Model files bigger than this hold their weights inline, so they are not parsed for external-data names. */
const PARSE_LIMIT = 256 * 2 ** 20;

export async function fetchHubModel(ref: string, opts: HubOptions = {}): Promise<HubModel> {
  const env = hubEnvironment({ offline: opts.offline });
  const { repo, revision } = parseHubRef(ref);
  if (env.offline) return fromCache(env, repo, revision, opts.dtype, 'offline');
  const client = new HubClient(env, repo);
  let commit: string;
  try {
    commit = await client.resolveCommit(revision);
  } catch (err) {
    if (LrpLensError.is(err, 'network-failure') && cachedCommit(env, repo, revision))
      return fromCache(env, repo, revision, opts.dtype, 'unreachable');
    throw err;
  }
  const files = await client.list(commit);
  const variant = chooseVariant(listVariants(files), repo, opts.dtype);
  const byPath = new Map(files.map((f) => [f.path, f]));
  const missing = REQUIRED.filter((p) => !byPath.has(p));
  if (missing.length)
    throw new LrpLensError(
      'model-not-found',
      `${repo} has no ${missing.join(', ')}: the tokenizer and config are needed beside the ONNX file.`,
    );
  const wanted = [...REQUIRED, ...OPTIONAL.filter((p) => byPath.has(p)), variant.file, ...variant.dataFiles];
  let downloaded = 0;
  for (const path of wanted) downloaded += await client.fetch(byPath.get(path)!, commit, opts);
  // The model file names its data files; fetch any the naming convention missed.
  for (const path of namedDataFiles(env, repo, commit, variant.file).filter((p) => !wanted.includes(p))) {
    const file = byPath.get(path);
    if (!file) throw new LrpLensError('model-corrupt', `${repo}/${variant.file} refers to ${path}, which the repo does not have.`);
    downloaded += await client.fetch(file, commit, opts);
  }
  const folder = repoFolder(env.cacheDir, repo);
  if (!COMMIT.test(revision)) writeRef(folder, revision, commit);
  return model(env, repo, revision, commit, variant, downloaded);
}

export interface HubVariantList {
  repo: string;
  commit: string;
  variants: Variant[];
  /** Variants whose files are all in the hub cache already. */
  cached: Dtype[];
}

/** The variants of a hub repo with their sizes (nothing is downloaded); from the cache when offline. */
export async function hubVariants(ref: string, opts: { offline?: boolean } = {}): Promise<HubVariantList> {
  const env = hubEnvironment(opts);
  const { repo, revision } = parseHubRef(ref);
  const folder = repoFolder(env.cacheDir, repo);
  if (env.offline) {
    const commit = cachedCommit(env, repo, revision);
    if (!commit) throw notCached(env, repo, revision, 'offline');
    const variants = listVariants(snapshotFiles(snapshotDir(folder, commit)));
    return { repo, commit, variants, cached: variants.map((v) => v.dtype) };
  }
  const client = new HubClient(env, repo);
  const commit = await client.resolveCommit(revision);
  const variants = listVariants(await client.list(commit));
  const local = new Set(snapshotFiles(snapshotDir(folder, commit)).map((f) => f.path));
  return {
    repo,
    commit,
    variants,
    cached: variants.filter((v) => [v.file, ...v.dataFiles].every((p) => local.has(p))).map((v) => v.dtype),
  };
}

function model(env: HubEnvironment, repo: string, revision: string, commit: string, variant: Variant, downloaded: number): HubModel {
  const dir = snapshotDir(repoFolder(env.cacheDir, repo), commit);
  return {
    dir,
    onnxPath: join(dir, variant.file),
    hub: { repo, revision, commit, dtype: variant.dtype, file: variant.file, endpoint: env.endpoint },
    downloaded,
  };
}

function cachedCommit(env: HubEnvironment, repo: string, revision: string): string | undefined {
  const folder = repoFolder(env.cacheDir, repo);
  const commit = COMMIT.test(revision) ? revision : readRef(folder, revision);
  return commit && existsSync(snapshotDir(folder, commit)) ? commit : undefined;
}

function fromCache(
  env: HubEnvironment,
  repo: string,
  revision: string,
  dtype: Dtype | undefined,
  why: 'offline' | 'unreachable',
): HubModel {
  const commit = cachedCommit(env, repo, revision);
  if (!commit) throw notCached(env, repo, revision, why);
  const dir = snapshotDir(repoFolder(env.cacheDir, repo), commit);
  const files = snapshotFiles(dir);
  const variants = listVariants(files);
  if (variants.length === 0) throw notCached(env, repo, revision, why);
  const variant = chooseVariant(variants, repo, dtype);
  const present = new Set(files.map((f) => f.path));
  const missing = [...REQUIRED, ...namedDataFiles(env, repo, commit, variant.file)].filter((p) => !present.has(p));
  if (missing.length) throw notCached(env, repo, revision, why, missing);
  return model(env, repo, revision, commit, variant, 0);
}

function notCached(env: HubEnvironment, repo: string, revision: string, why: 'offline' | 'unreachable', missing?: string[]): LrpLensError {
  const what = missing
    ? `${repo}@${revision} is only partly in the hub cache (missing ${missing.join(', ')})`
    : `${repo}@${revision} is not in the hub cache`;
  const fix =
    why === 'offline'
      ? 'downloads are disabled (--offline / HF_HUB_OFFLINE / LRP_LENS_OFFLINE). Run once online without --offline, or pass a local model folder.'
      : `${env.endpoint} cannot be reached. Check the network (or HF_ENDPOINT), or pass a local model folder.`;
  return new LrpLensError('model-not-found', `${what} (${env.cacheDir}) and ${fix}`);
}

/** External-data files the cached model file refers to (relative to the repo root). */
function namedDataFiles(env: HubEnvironment, repo: string, commit: string, file: string): string[] {
  const path = join(snapshotDir(repoFolder(env.cacheDir, repo), commit), file);
  if (!existsSync(path) || statSync(path).size > PARSE_LIMIT) return [];
  let proto: onnx.ModelProto;
  try {
    proto = onnx.ModelProto.decode(readFileSync(path));
  } catch (err) {
    throw new LrpLensError('model-corrupt', `${path} is not an ONNX model (${(err as Error).message}).`, err);
  }
  const folder = file.includes('/') ? file.slice(0, file.lastIndexOf('/') + 1) : '';
  return [...externalFiles(proto.graph?.initializer ?? [])].map((loc) => `${folder}${loc}`);
}

export function expectedContent(file: RemoteFile): ExpectedContent {
  if (file.lfs) return { size: file.lfs.size, checksum: { algorithm: 'sha256', hex: file.lfs.oid } };
  if (!file.oid) throw new LrpLensError('runtime-failure', `The hub listed ${file.path} without a checksum; cannot verify it.`);
  return { size: file.size, checksum: { algorithm: 'git-sha1', hex: file.oid } };
}

/** The hub library, with its errors turned into messages that name the setting or the fix. */
class HubClient {
  private lastErrorCode?: string;
  private readonly fetchImpl: typeof fetch;

  constructor(
    private readonly env: HubEnvironment,
    private readonly repo: string,
  ) {
    this.fetchImpl = async (input, init) => {
      const res = await fetch(input, init);
      if (!res.ok) this.lastErrorCode = res.headers.get('x-error-code') ?? undefined;
      return res;
    };
  }

  private get params() {
    return { hubUrl: this.env.endpoint, accessToken: this.env.token, fetch: this.fetchImpl };
  }

  async resolveCommit(revision: string): Promise<string> {
    const info = await this.call(() => modelInfo({ name: this.repo, revision, additionalFields: ['sha'], ...this.params }), revision);
    if (!info.sha) throw new LrpLensError('runtime-failure', `${this.env.endpoint} did not say which commit ${this.repo}@${revision} is.`);
    return info.sha;
  }

  async list(commit: string): Promise<RemoteFile[]> {
    return this.call(async () => {
      const out: RemoteFile[] = [];
      for await (const f of listFiles({ repo: this.repo, revision: commit, recursive: true, ...this.params }))
        if (f.type === 'file') out.push({ path: f.path, size: f.lfs?.size ?? f.size, oid: f.oid, lfs: f.lfs });
      return out;
    }, commit);
  }

  /** One file into blobs/ (unless there) and its snapshot link; returns the bytes fetched. */
  async fetch(file: RemoteFile, commit: string, opts: HubOptions): Promise<number> {
    const expected = expectedContent(file);
    const folder = repoFolder(this.env.cacheDir, this.repo);
    const etag = expected.checksum.hex;
    const name = `${this.repo}/${file.path}`;
    const source = {
      name,
      open: (start: number) =>
        this.call(async () => {
          const blob = await downloadFile({ repo: this.repo, path: file.path, revision: commit, ...this.params });
          if (!blob) throw new LrpLensError('model-not-found', `${name} is not in ${this.repo}@${commit}.`);
          return blob.slice(start).stream();
        }, commit),
    };
    mkdirSync(join(folder, 'blobs'), { recursive: true });
    const n = await downloadBlob(source, blobPath(folder, etag), expected, opts);
    linkIntoSnapshot(folder, commit, file.path, etag);
    return n;
  }

  private async call<T>(fn: () => Promise<T>, revision: string): Promise<T> {
    this.lastErrorCode = undefined;
    try {
      return await fn();
    } catch (err) {
      throw this.explain(err, revision);
    }
  }

  private explain(err: unknown, revision: string): unknown {
    if (LrpLensError.is(err)) return err;
    const { endpoint, token, tokenSource } = this.env;
    if (err instanceof HubApiError) {
      const code = this.lastErrorCode;
      if (code === 'RevisionNotFound')
        return new LrpLensError(
          'model-not-found',
          `${this.repo} has no revision '${revision}'. Use a branch, tag or commit the repo has (org/name@main).`,
          err,
        );
      if (code === 'EntryNotFound') return new LrpLensError('model-not-found', `${err.url} is not in ${this.repo}@${revision}.`, err);
      if (code === 'GatedRepo' || err.statusCode === 403 || (err.statusCode === 401 && code !== 'RepoNotFound'))
        return new LrpLensError(
          'access-denied',
          token
            ? `${this.repo} is gated and the token from ${tokenSource} was refused (HTTP ${err.statusCode}). Accept the model's licence at ${endpoint}/${this.repo} with that account, or use a token that has access.`
            : `${this.repo} is gated (HTTP ${err.statusCode}): accept its licence at ${endpoint}/${this.repo}, then give a token: HF_TOKEN, \`huggingface-cli login\` (writes the token file), or in VS Code LRP Lens: Set Hugging Face Token….`,
          err,
        );
      if (err.statusCode === 404 || code === 'RepoNotFound')
        return new LrpLensError(
          'model-not-found',
          `There is no model '${this.repo}' on ${endpoint}${token ? '' : ' (or it is private: set HF_TOKEN)'}. Check the id (org/name), or pass a local model folder.`,
          err,
        );
      return new LrpLensError('runtime-failure', `${endpoint} answered HTTP ${err.statusCode} for ${this.repo}: ${err.message}`, err);
    }
    if (err instanceof TypeError && /access token/i.test(err.message))
      return new LrpLensError(
        'access-denied',
        `The token from ${tokenSource} is not a Hugging Face token (${err.message}). Use a token from ${endpoint}/settings/tokens.`,
        err,
      );
    if (
      err instanceof TypeError &&
      /fetch failed|network|ECONN|ENOTFOUND|socket/i.test(`${err.message} ${(err.cause as Error)?.message ?? ''}`)
    )
      return new LrpLensError(
        'network-failure',
        `Could not reach ${endpoint} (${(err.cause as Error)?.message ?? err.message}). Check the network, set HF_ENDPOINT for a mirror, or use --offline with a cached model.`,
        err,
      );
    return err;
  }
}
