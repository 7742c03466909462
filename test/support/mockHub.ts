/**
 * A local Hugging Face hub for tests (plain node:http): the HTTP API as @huggingface/hub and huggingface_hub use
 * it — model info, tree and paths-info listings with sizes and LFS sha256, `resolve/<rev>/<path>` with ETag,
 * X-Repo-Commit, X-Linked-Etag and X-Linked-Size, a 302 to a CDN path for LFS files, Range requests, 401 for a
 * gated repo without a token, 404s with the hub's X-Error-Code — plus faults a test can arm: a response cut off
 * after n bytes, a flipped byte.
 */
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface MockFile {
  path: string;
  bytes: Buffer;
}

export interface MockRepo {
  id: string;
  files: MockFile[];
  /** Needs `Authorization: Bearer <token>` to download. */
  gated?: boolean;
  /** Extra branches or tags → their own file sets (a second commit). */
  revisions?: Record<string, MockFile[]>;
}

export interface MockRequest {
  method: string;
  url: string;
  range?: string;
  auth?: string;
}

interface Entry {
  path: string;
  bytes: Buffer;
  oid: string;
  sha256: string;
  lfs: boolean;
}

interface Commit {
  sha: string;
  entries: Map<string, Entry>;
}

interface Repo {
  id: string;
  gated: boolean;
  refs: Map<string, Commit>;
}

export interface MockHub {
  url: string;
  token: string;
  requests: MockRequest[];
  /** The next download of `path` (any repo) stops after `bytes` bytes: the connection drops. */
  cutAfter(path: string, bytes: number): void;
  /** The next download of `path` has the byte at `offset` flipped. */
  corruptAt(path: string, offset: number): void;
  commitOf(repo: string, revision?: string): string;
  close(): Promise<void>;
}

const LFS = /\.(onnx|onnx_data(_\d+)?|safetensors|bin)$/;

function gitOid(bytes: Buffer): string {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

function commitOf(id: string, revision: string, files: MockFile[]): Commit {
  const entries = new Map<string, Entry>();
  const sha = createHash('sha1');
  sha.update(`${id}@${revision}`);
  for (const f of files) {
    const e = {
      path: f.path,
      bytes: f.bytes,
      oid: gitOid(f.bytes),
      sha256: createHash('sha256').update(f.bytes).digest('hex'),
      lfs: LFS.test(f.path),
    };
    entries.set(f.path, e);
    sha.update(e.oid);
  }
  return { sha: sha.digest('hex'), entries };
}

function treeEntry(e: Entry) {
  return {
    type: 'file',
    oid: e.lfs
      ? gitOid(Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${e.sha256}\nsize ${e.bytes.length}\n`))
      : e.oid,
    size: e.bytes.length,
    path: e.path,
    ...(e.lfs ? { lfs: { oid: e.sha256, size: e.bytes.length, pointerSize: 134 } } : {}),
  };
}

export async function startMockHub(repos: MockRepo[], token = 'hf_mocktoken'): Promise<MockHub> {
  const byId = new Map<string, Repo>();
  for (const r of repos) {
    const refs = new Map<string, Commit>();
    const main = commitOf(r.id, 'main', r.files);
    refs.set('main', main);
    refs.set(main.sha, main);
    for (const [rev, files] of Object.entries(r.revisions ?? {})) {
      const c = commitOf(r.id, rev, files);
      refs.set(rev, c);
      refs.set(c.sha, c);
    }
    byId.set(r.id, { id: r.id, gated: !!r.gated, refs });
  }
  const requests: MockRequest[] = [];
  const cuts = new Map<string, number>();
  const corruptions = new Map<string, number>();

  const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, status: number, code: string, message: string) =>
    json(res, status, { error: message }, { 'X-Error-Code': code });

  const sendBytes = (req: IncomingMessage, res: ServerResponse, e: Entry, headers: Record<string, string>) => {
    const total = e.bytes.length;
    let start = 0;
    let end = total - 1;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), total - 1) : total - 1;
      if (start >= total) {
        res.writeHead(416, { 'Content-Range': `bytes */${total}` });
        return res.end();
      }
    }
    const body = Buffer.from(e.bytes.subarray(start, end + 1));
    const status = m ? 206 : 200;
    const head = {
      ...headers,
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(body.length),
      'Accept-Ranges': 'bytes',
      ...(m ? { 'Content-Range': `bytes ${start}-${end}/${total}` } : {}),
    };
    if (req.method === 'HEAD') {
      res.writeHead(status, head);
      return res.end();
    }
    const probe = m && start === 0 && end === 0;
    const flip = corruptions.get(e.path);
    if (!probe && flip !== undefined && flip >= start && flip <= end) {
      corruptions.delete(e.path);
      body[flip - start] ^= 0xff;
    }
    const cut = cuts.get(e.path);
    if (!probe && cut !== undefined) {
      cuts.delete(e.path);
      res.writeHead(status, head);
      res.write(body.subarray(0, cut), () => res.destroy());
      return;
    }
    res.writeHead(status, head);
    res.end(body);
  };

  const authorised = (req: IncomingMessage) => req.headers.authorization === `Bearer ${token}`;

  const handle = (req: IncomingMessage, res: ServerResponse, bodyText: string) => {
    const url = new URL(req.url ?? '/', 'http://mock');
    const path = decodeURIComponent(url.pathname);
    requests.push({ method: req.method ?? 'GET', url: req.url ?? '', range: req.headers.range, auth: req.headers.authorization });

    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (cdn) {
      for (const r of byId.values())
        for (const c of r.refs.values())
          for (const e of c.entries.values()) if (e.sha256 === cdn[1]) return sendBytes(req, res, e, { ETag: `"${e.sha256}"` });
      return fail(res, 404, 'EntryNotFound', 'Not found');
    }

    const api = /^\/api\/models\/([^/]+\/[^/]+)(?:\/(revision|tree|paths-info)\/([^/]+)(?:\/(.*))?)?$/.exec(path);
    if (api) {
      const [, id, kind, rev = 'main', sub] = api;
      const repo = byId.get(id);
      if (!repo) return fail(res, 404, 'RepoNotFound', 'Repository not found');
      const commit = repo.refs.get(rev === 'HEAD' ? 'main' : rev);
      if (!commit) return fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      const entries = [...commit.entries.values()];
      if (!kind || kind === 'revision')
        return json(res, 200, {
          _id: createHash('md5').update(id).digest('hex').slice(0, 24),
          id,
          sha: commit.sha,
          private: false,
          gated: repo.gated ? 'manual' : false,
          downloads: 0,
          likes: 0,
          lastModified: '2025-01-01T00:00:00.000Z',
          pipeline_tag: 'text-generation',
          siblings: entries.map((e) => ({ rfilename: e.path })),
        });
      if (kind === 'tree') {
        const prefix = sub ? `${sub}/` : '';
        const recursive = url.searchParams.get('recursive') === 'true';
        const files = entries.filter((e) => e.path.startsWith(prefix) && (recursive || !e.path.slice(prefix.length).includes('/')));
        const dirs = [
          ...new Set(
            entries
              .filter((e) => e.path.startsWith(prefix))
              .map((e) => e.path.slice(prefix.length))
              .filter((p) => p.includes('/'))
              .map((p) => prefix + p.split('/')[0]),
          ),
        ];
        return json(res, 200, [
          ...dirs.map((d) => ({ type: 'directory', oid: gitOid(Buffer.from(d)), size: 0, path: d })),
          ...files.map(treeEntry),
        ]);
      }
      const asked = (JSON.parse(bodyText || '{}') as { paths?: string[] }).paths ?? [];
      return json(
        res,
        200,
        entries
          .filter((e) => asked.includes(e.path))
          .map((e) => ({ ...treeEntry(e), lastCommit: { id: commit.sha, title: 'Upload', date: '2025-01-01T00:00:00.000Z' } })),
      );
    }

    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (resolve) {
      const [, id, rev, file] = resolve;
      const repo = byId.get(id);
      if (!repo) return fail(res, 401, 'RepoNotFound', 'Repository not found');
      const commit = repo.refs.get(rev);
      if (!commit) return fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      if (repo.gated && !authorised(req))
        return fail(
          res,
          401,
          'GatedRepo',
          `Access to model ${id} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
        );
      const e = commit.entries.get(file);
      if (!e) return fail(res, 404, 'EntryNotFound', `${file} does not exist on "${rev}"`);
      const headers = { 'X-Repo-Commit': commit.sha, ETag: `"${e.lfs ? e.sha256 : e.oid}"` };
      if (e.lfs) {
        res.writeHead(302, {
          ...headers,
          Location: `/cdn/${e.sha256}`,
          'X-Linked-Etag': `"${e.sha256}"`,
          'X-Linked-Size': String(e.bytes.length),
          'Content-Length': '0',
        });
        return res.end();
      }
      return sendBytes(req, res, e, headers);
    }
    fail(res, 404, 'NotFound', `No route for ${path}`);
  };

  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => handle(req, res, body));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    requests,
    cutAfter: (path, bytes) => cuts.set(path, bytes),
    corruptAt: (path, offset) => corruptions.set(path, offset),
    commitOf: (repo, revision = 'main') => byId.get(repo)!.refs.get(revision)!.sha,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
