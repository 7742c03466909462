/**
 * The hub cache as huggingface_hub lays it out, so either tool reuses the other's downloads:
 *
 *   models--org--name/blobs/<etag>                 the bytes (etag: sha256 for LFS files, git blob sha1 otherwise)
 *   models--org--name/snapshots/<commit>/<path>    relative symlinks into blobs/
 *   models--org--name/refs/<branch or tag>         the commit it resolved to
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type { RepoFile } from './variants';

export function repoFolder(cacheDir: string, repo: string): string {
  return join(cacheDir, `models--${repo.split('/').join('--')}`);
}

export function blobPath(folder: string, etag: string): string {
  return join(folder, 'blobs', etag);
}

export function snapshotDir(folder: string, commit: string): string {
  return join(folder, 'snapshots', commit);
}

export function readRef(folder: string, revision: string): string | undefined {
  const path = join(folder, 'refs', revision);
  return existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
}

export function writeRef(folder: string, revision: string, commit: string): void {
  const path = join(folder, 'refs', revision);
  mkdirSync(dirname(path), { recursive: true });
  if (readRef(folder, revision) !== commit) writeFileSync(path, commit);
}

/** snapshots/<commit>/<path> → ../../blobs/<etag> (a copy where symbolic links are not allowed). */
export function linkIntoSnapshot(folder: string, commit: string, path: string, etag: string): string {
  const pointer = join(snapshotDir(folder, commit), path);
  if (existsSync(pointer)) return pointer;
  mkdirSync(dirname(pointer), { recursive: true });
  const blob = blobPath(folder, etag);
  try {
    symlinkSync(relative(dirname(pointer), blob), pointer);
  } catch {
    copyFileSync(blob, pointer);
  }
  return pointer;
}

/** The files of a cached snapshot with their sizes (following the links), as a listing. */
export function snapshotFiles(dir: string, prefix = ''): RepoFile[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    const full = join(dir, e.name);
    if (e.isDirectory()) return snapshotFiles(full, rel);
    return existsSync(full) ? [{ path: rel, size: statSync(full).size }] : [];
  });
}
