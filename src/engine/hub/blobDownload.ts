/**
 * One file from the hub into `blobs/<etag>`, the way huggingface_hub does it: bytes stream into
 * `<blob>.incomplete` (memory stays flat), an interrupted download resumes from what is there with a Range
 * request, and the file becomes the blob only once its size and checksum match (sha256 for LFS files, the git
 * blob sha1 for small ones). A partial or corrupt file is never used.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, renameSync, statSync, truncateSync, unlinkSync } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { LrpLensError } from '../errors';
import type { ProgressListener } from '../progress';

export interface ExpectedContent {
  size: number;
  /** sha256 (LFS files) or git blob sha1 (small files), hex. */
  checksum: { algorithm: 'sha256' | 'git-sha1'; hex: string };
}

export interface BlobSource {
  /** A readable of the file's bytes from `start` on (the hub library's blob, sliced: a Range request). */
  open(start: number): Promise<ReadableStream<Uint8Array>>;
  /** For messages. */
  name: string;
}

export interface DownloadOptions {
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

/** Downloads into `blobPath` unless it is already there; returns the number of bytes fetched. */
export async function downloadBlob(
  source: BlobSource,
  blobPath: string,
  expected: ExpectedContent,
  opts: DownloadOptions = {},
): Promise<number> {
  if (existsSync(blobPath)) return 0;
  const partial = `${blobPath}.incomplete`;
  let fetched = await fetchInto(source, partial, expected, opts);
  if (!(await matches(partial, expected))) {
    // A corrupt byte (or a server that changed the file under us): start over once, then give up.
    unlinkSync(partial);
    fetched += await fetchInto(source, partial, expected, opts);
    if (!(await matches(partial, expected))) {
      unlinkSync(partial);
      throw new LrpLensError(
        'model-corrupt',
        `${source.name} downloaded twice with a ${expected.checksum.algorithm} that differs from the hub's (${expected.checksum.hex}); it was deleted. Check the network or proxy and try again.`,
      );
    }
  }
  renameSync(partial, blobPath);
  return fetched;
}

async function fetchInto(source: BlobSource, partial: string, expected: ExpectedContent, opts: DownloadOptions): Promise<number> {
  let have = existsSync(partial) ? statSync(partial).size : 0;
  if (have > expected.size) {
    truncateSync(partial, 0);
    have = 0;
  }
  if (have === expected.size) return 0;
  if (opts.signal?.aborted) throw cancelled(partial, have, expected.size);
  let done = have;
  const report = () => opts.onProgress?.({ stage: 'download', done, total: expected.size, unit: 'bytes', detail: source.name });
  report();
  const count = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      done += chunk.length;
      report();
      callback(null, chunk);
    },
  });
  try {
    const body = Readable.fromWeb((await source.open(have)) as WebReadableStream<Uint8Array>);
    await pipeline(body, count, createWriteStream(partial, { flags: 'a' }), { signal: opts.signal });
  } catch (err) {
    throw downloadFailure(err, source.name, partial, done, expected.size, opts.signal);
  }
  return done - have;
}

function downloadFailure(err: unknown, name: string, partial: string, done: number, size: number, signal?: AbortSignal): LrpLensError {
  if (LrpLensError.is(err)) return err;
  if (signal?.aborted) return cancelled(partial, done, size);
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new LrpLensError(
      'disk-full',
      `The disk filled up while downloading ${name} (${done} of ${size} bytes in ${partial}). Free space (or point HF_HUB_CACHE at a larger disk) and run again: the download resumes.`,
      err,
    );
  return new LrpLensError(
    'network-failure',
    `The download of ${name} broke off after ${done} of ${size} bytes (${describe(err)}). The partial file is kept (${partial}); run again to resume.`,
    err,
  );
}

function cancelled(partial: string, done: number, size: number): LrpLensError {
  return new LrpLensError(
    'cancelled',
    `The download was cancelled at ${done} of ${size} bytes; the partial file ${partial} resumes next time.`,
  );
}

function describe(err: unknown): string {
  const e = err as Error & { cause?: Error };
  return [e.message, e.cause?.message].filter(Boolean).join(': ') || String(err);
}

async function matches(path: string, expected: ExpectedContent): Promise<boolean> {
  const size = statSync(path).size;
  if (size !== expected.size) return false;
  return (await checksum(path, expected.checksum.algorithm, size)) === expected.checksum.hex;
}

/** sha256 of the file, or git's blob id: sha1("blob <size>\0" + bytes). */
export async function checksum(path: string, algorithm: 'sha256' | 'git-sha1', size: number): Promise<string> {
  const hash = createHash(algorithm === 'sha256' ? 'sha256' : 'sha1');
  if (algorithm === 'git-sha1') hash.update(`blob ${size}\0`);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
