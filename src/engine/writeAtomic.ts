/**
 * Whole-file writes that a crash never leaves half done: temporary files beside the targets, then renames.
 * A failure before the renames removes the temporaries and leaves the old files as they were.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export interface FileContents {
  path: string;
  data: Uint8Array;
}

/** Writes bytes to an open file; tests inject a failure here. */
export type WriteBytes = (fd: number, data: Uint8Array) => void;

export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  writeThenRename([path], (temps) => writeFileSync(temps[0], data));
}

/**
 * Writes several files as a set, durably: each goes to a temporary in its folder and is fsynced, then all are
 * renamed in order and the folder is fsynced. A crash between two renames leaves some new and some old files;
 * a set that must agree records hashes to notice that.
 */
export function writeFilesDurably(files: FileContents[], writeBytes: WriteBytes = writeAll): void {
  writeThenRename(
    files.map((f) => f.path),
    (temps) => files.forEach((f, i) => writeSynced(temps[i], f.data, writeBytes)),
  );
  syncDir(dirname(files[0].path));
}

function writeThenRename(paths: string[], writeTemps: (temps: string[]) => void): void {
  const tag = `${process.pid}.${Date.now().toString(36)}`;
  const temps = paths.map((p) => `${p}.${tag}.tmp`);
  try {
    writeTemps(temps);
    paths.forEach((p, i) => renameSync(temps[i], p));
  } catch (err) {
    for (const t of temps) rmSync(t, { force: true });
    throw err;
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  for (let at = 0; at < data.length;) at += writeSync(fd, data, at, data.length - at);
}

function writeSynced(path: string, data: Uint8Array, writeBytes: WriteBytes): void {
  const fd = openSync(path, 'w');
  try {
    writeBytes(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes the renames durable; some platforms (Windows) cannot open a folder, which only costs durability. */
function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort
  }
}
