import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { downloadFileToCacheDir, scanCacheDir } from '@huggingface/hub';
import { AttributionEngine } from '../../src/engine/attribution/attribute';
import { LrpLensError } from '../../src/engine/errors';
import { fetchHubModel, hubVariants } from '../../src/engine/hub/hubModel';
import { resolveModel } from '../../src/engine/runtime/model';
import { startMockHub } from '../support/mockHub';
import type { MockHub } from '../support/mockHub';
import { EXTERNAL_REPO, GATED_REPO, PYTORCH_REPO, REPO, stories260kRepos } from '../support/hubRepos';
import { STORIES, requireShared } from '../support/sharedFolder';
import { CLI } from '../support/bundledCli';
import { ProgressDisplay } from '../../src/cli/progressDisplay';
import { variantItems } from '../../src/commands/hubVariantItems';

const PROMPT = 'Once upon a time, there was a little girl named';
const ENV_KEYS = [
  'HF_ENDPOINT',
  'HF_HUB_CACHE',
  'HF_HOME',
  'HF_TOKEN',
  'HF_TOKEN_PATH',
  'HF_HUB_OFFLINE',
  'LRP_LENS_OFFLINE',
  'LRP_LENS_CACHE',
];

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

async function rejects(p: Promise<unknown>, reason: string, ...patterns: RegExp[]): Promise<LrpLensError> {
  try {
    await p;
  } catch (err) {
    assert.ok(LrpLensError.is(err), `expected an LrpLensError, got ${(err as Error).stack}`);
    assert.equal(err.reason, reason, err.message);
    for (const re of patterns) assert.match(err.message, re);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('Hugging Face hub downloads (against a local mock hub)', function () {
  let hub: MockHub;
  let work: string;
  let cache: string;
  const saved: Record<string, string | undefined> = {};
  const repoDir = (repo: string) => join(cache, `models--${repo.replace('/', '--')}`);

  before(async function () {
    requireShared(this);
    for (const k of ENV_KEYS) saved[k] = process.env[k];
    hub = await startMockHub(stories260kRepos(STORIES));
  });

  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'lrp-hub-'));
    cache = join(work, 'hub');
    for (const k of ENV_KEYS) delete process.env[k];
    Object.assign(process.env, {
      HF_ENDPOINT: hub.url,
      HF_HUB_CACHE: cache,
      HF_HOME: join(work, 'hf-home'),
      LRP_LENS_CACHE: join(work, 'lrp-cache'),
    });
    hub.requests.length = 0;
  });

  afterEach(() => rmSync(work, { recursive: true, force: true }));

  after(async () => {
    for (const k of ENV_KEYS)
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    await hub?.close();
  });

  it('attributes by hub id: the smallest exact variant (fp16), the resolved commit in the result', async () => {
    const engine = await AttributionEngine.load(REPO);
    try {
      const commit = hub.commitOf(REPO);
      assert.equal(engine.model.ref, `${REPO}@${commit}`);
      assert.equal(engine.model.hub?.dtype, 'fp16');
      assert.match(engine.model.onnxPath, /onnx\/model_fp16\.onnx$/);
      const r = await engine.attribute({ prompt: PROMPT, target: ' Lily' });
      assert.equal(r.model.ref, `${REPO}@${commit}`);
      assert.equal(r.target.text, ' Lily');
      assert.ok(r.relevance.tokens.some((v) => v !== 0));
    } finally {
      await engine.release();
    }
  });

  it('chooses the variant asked for (fp32) and attributes as the local folder does', async () => {
    const local = await AttributionEngine.load(STORIES);
    const viaHub = await AttributionEngine.load(REPO, { dtype: 'fp32' });
    try {
      assert.match(viaHub.model.onnxPath, /onnx\/model\.onnx$/);
      const [a, b] = [await local.attribute({ prompt: PROMPT }), await viaHub.attribute({ prompt: PROMPT })];
      assert.equal(b.target.id, a.target.id);
      assert.deepEqual(b.relevance.tokens, a.relevance.tokens);
    } finally {
      await local.release();
      await viaHub.release();
    }
  });

  it('lays the cache out as huggingface_hub does, and a second tool finds the files without the network', async () => {
    const m = await fetchHubModel(REPO, { dtype: 'fp32' });
    const commit = hub.commitOf(REPO);
    const folder = repoDir(REPO);
    assert.equal(m.dir, join(folder, 'snapshots', commit));
    assert.equal(readFileSync(join(folder, 'refs', 'main'), 'utf8'), commit);
    const pointer = join(m.dir, 'onnx', 'model.onnx');
    assert.ok(lstatSync(pointer).isSymbolicLink());
    const digest = sha256(join(STORIES, 'onnx', 'model.onnx'));
    assert.equal(readlinkSync(pointer), join('..', '..', '..', 'blobs', digest));
    assert.equal(sha256(join(folder, 'blobs', digest)), digest);
    const configOid = createHash('sha1')
      .update(`blob ${statSync(join(STORIES, 'config.json')).size}\0`)
      .update(readFileSync(join(STORIES, 'config.json')))
      .digest('hex');
    assert.ok(existsSync(join(folder, 'blobs', configOid)), 'small files are named by their git blob id, as huggingface_hub names them');
    assert.ok(!existsSync(join(m.dir, 'onnx', 'model_fp16.onnx')), 'only the chosen variant is downloaded');

    hub.requests.length = 0;
    const found = await downloadFileToCacheDir({ repo: REPO, path: 'onnx/model.onnx', revision: commit, cacheDir: cache, hubUrl: hub.url });
    assert.equal(found, pointer);
    assert.equal(hub.requests.length, 0);
    const scan = await scanCacheDir(cache);
    const repo = scan.repos.find((r) => r.id.name === REPO);
    assert.ok(repo, 'the library scanning the cache sees the repo');
    assert.deepEqual(repo.revisions[0].refs, ['main']);
    assert.equal(repo.revisions[0].commitOid, commit);
  });

  it('brings the external data the model names (model.onnx_data) and attributes with it', async () => {
    const engine = await AttributionEngine.load(EXTERNAL_REPO);
    try {
      assert.equal(engine.model.hub?.dtype, 'fp32');
      assert.ok(existsSync(join(engine.model.dir, 'onnx', 'model.onnx_data')));
      const r = await engine.attribute({ prompt: PROMPT, target: ' Lily' });
      assert.ok(r.relevance.tokens.some((v) => v !== 0));
    } finally {
      await engine.release();
    }
  });

  it('resumes a download cut off half-way with a Range request', async () => {
    const size = statSync(join(STORIES, 'onnx', 'model.onnx')).size;
    const half = Math.floor(size / 2);
    hub.cutAfter('onnx/model.onnx', half);
    const err = await rejects(fetchHubModel(REPO, { dtype: 'fp32' }), 'network-failure', /broke off/, /run again to resume/);
    const digest = sha256(join(STORIES, 'onnx', 'model.onnx'));
    const partial = join(repoDir(REPO), 'blobs', `${digest}.incomplete`);
    assert.match(err.message, new RegExp(partial.replace(/[.]/g, '\\.')));
    const kept = statSync(partial).size;
    assert.ok(kept > 0 && kept <= half, `kept ${kept} of the ${half} bytes sent`);
    assert.ok(!existsSync(join(repoDir(REPO), 'blobs', digest)), 'a partial file is never the blob');

    hub.requests.length = 0;
    const m = await fetchHubModel(REPO, { dtype: 'fp32' });
    assert.ok(
      hub.requests.some((r) => r.url.startsWith('/cdn/') && r.range === `bytes=${kept}-${size - 1}`),
      JSON.stringify(hub.requests),
    );
    assert.equal(sha256(m.onnxPath), digest);
    assert.ok(!existsSync(partial));
  });

  it('detects a corrupted byte by its sha256 and fetches the file again', async () => {
    hub.corruptAt('onnx/model.onnx', 1000);
    const m = await fetchHubModel(REPO, { dtype: 'fp32' });
    assert.equal(sha256(m.onnxPath), sha256(join(STORIES, 'onnx', 'model.onnx')));
    const full = hub.requests.filter((r) => r.url.startsWith('/cdn/') && r.range !== 'bytes=0-0');
    assert.equal(full.length, 2, 'fetched twice');
  });

  it('a gated repo names the token settings; HF_TOKEN or the token file opens it', async () => {
    await rejects(fetchHubModel(GATED_REPO), 'access-denied', /gated/, /HF_TOKEN/, /Set Hugging Face Token/, /huggingface-cli login/);
    process.env.HF_TOKEN = 'not-a-token';
    await rejects(fetchHubModel(GATED_REPO), 'access-denied', /token from HF_TOKEN is not a Hugging Face token/);
    process.env.HF_TOKEN = 'hf_wrong';
    await rejects(fetchHubModel(GATED_REPO), 'access-denied', /token from HF_TOKEN was refused/);
    process.env.HF_TOKEN = hub.token;
    const m = await fetchHubModel(GATED_REPO);
    assert.ok(existsSync(m.onnxPath));
    assert.ok(hub.requests.some((r) => r.auth === `Bearer ${hub.token}`));

    delete process.env.HF_TOKEN;
    rmSync(cache, { recursive: true, force: true });
    mkdirSync(join(work, 'hf-home'), { recursive: true });
    writeFileSync(join(work, 'hf-home', 'token'), `${hub.token}\n`);
    assert.ok(existsSync((await fetchHubModel(GATED_REPO)).onnxPath), 'the token file huggingface-cli login writes');
  });

  it('offline: serves the cached model without a request, and refuses an uncached one with the fix', async () => {
    const online = await resolveModel(REPO);
    process.env.HF_HUB_OFFLINE = '1';
    hub.requests.length = 0;
    const offline = await resolveModel(REPO);
    assert.equal(offline.ref, online.ref);
    assert.equal(offline.onnxPath, online.onnxPath);
    assert.equal(hub.requests.length, 0);
    await rejects(resolveModel(EXTERNAL_REPO), 'model-not-found', /not in the hub cache/, /HF_HUB_OFFLINE/, /Run once online/);
    await rejects(resolveModel(REPO, { dtype: 'fp32' }), 'model-not-found', /no fp32 variant/, /fp16/);
    delete process.env.HF_HUB_OFFLINE;
    await rejects(resolveModel(EXTERNAL_REPO, { offline: true }), 'model-not-found', /--offline/);
  });

  it('revisions: @v1 resolves to its own commit and snapshot, recorded in the ref', async () => {
    const m = await resolveModel(`${REPO}@v1`);
    assert.equal(m.ref, `${REPO}@${hub.commitOf(REPO, 'v1')}`);
    assert.equal(m.hub?.dtype, 'fp32', 'v1 has only fp32');
    assert.equal(readFileSync(join(repoDir(REPO), 'refs', 'v1'), 'utf8'), hub.commitOf(REPO, 'v1'));
    await rejects(resolveModel(`${REPO}@nope`), 'model-not-found', /no revision 'nope'/);
  });

  it('lists the variants with sizes and support before downloading anything', async () => {
    const v = await hubVariants(REPO);
    assert.deepEqual(
      v.variants.map((x) => [x.dtype, x.file, x.support]),
      [
        ['fp32', 'onnx/model.onnx', 'exact'],
        ['fp16', 'onnx/model_fp16.onnx', 'exact'],
      ],
    );
    assert.equal(v.variants[0].bytes, statSync(join(STORIES, 'onnx', 'model.onnx')).size);
    assert.deepEqual(v.cached, []);
    assert.ok(!existsSync(repoDir(REPO)));
    const ext = await hubVariants(EXTERNAL_REPO);
    assert.deepEqual(ext.variants[0].dataFiles, ['onnx/model.onnx_data']);
  });

  describe('bad input', () => {
    it('a hub id that does not exist', () =>
      rejects(resolveModel('lrp-test/no-such-model'), 'model-not-found', /no model 'lrp-test\/no-such-model'/));

    it('a PyTorch-only repo: export with Optimum or pick an onnx-community model', () =>
      rejects(resolveModel(PYTORCH_REPO), 'model-not-found', /no ONNX model/, /Optimum/, /onnx-community/));

    it('a variant the repo lacks lists the ones it has', () =>
      rejects(resolveModel(REPO, { dtype: 'q4' }), 'model-not-found', /no q4 variant/, /fp32 \(1\.\d MB\)/, /fp16/, /--dtype/));

    it('a disk that fills up leaves no partial file as if complete', async () => {
      const digest = sha256(join(STORIES, 'onnx', 'model.onnx'));
      mkdirSync(join(repoDir(REPO), 'blobs'), { recursive: true });
      symlinkSync('/dev/full', join(repoDir(REPO), 'blobs', `${digest}.incomplete`));
      await rejects(resolveModel(REPO, { dtype: 'fp32' }), 'disk-full', /disk filled up/, /Free space/);
      assert.ok(!existsSync(join(repoDir(REPO), 'blobs', digest)));
      assert.ok(!existsSync(join(repoDir(REPO), 'snapshots', hub.commitOf(REPO), 'onnx', 'model.onnx')));
    });

    it('an unreachable hub names the network and the offline way out', async () => {
      process.env.HF_ENDPOINT = 'http://127.0.0.1:9';
      await rejects(resolveModel(REPO), 'network-failure', /Could not reach/, /--offline/);
    });
  });
});

describe('lrp-lens models / --dtype / progress (the bundled CLI against the mock hub)', function () {
  let hub: MockHub;
  let work: string;
  // The mock hub answers from this process: the CLI must run asynchronously, not through spawnSync.
  let run: (...args: string[]) => Promise<{ code: number | null; out: string; err: string }>;

  before(async function () {
    requireShared(this);
    hub = await startMockHub(stories260kRepos(STORIES));
    work = mkdtempSync(join(tmpdir(), 'lrp-hub-cli-'));
    const env: NodeJS.ProcessEnv = { ...process.env, HF_ENDPOINT: hub.url, HF_HUB_CACHE: join(work, 'hub'), HF_HOME: join(work, 'home') };
    env.LRP_LENS_CACHE = join(work, 'cache');
    for (const k of ['HF_TOKEN', 'HF_TOKEN_PATH', 'HF_HUB_OFFLINE', 'LRP_LENS_OFFLINE']) delete env[k];
    run = (...args) =>
      new Promise((ok) => {
        const child = spawn(process.execPath, [CLI, ...args], { env });
        let out = '';
        let err = '';
        child.stdout.on('data', (c: Buffer) => (out += c.toString()));
        child.stderr.on('data', (c: Buffer) => (err += c.toString()));
        child.on('close', (code) => ok({ code, out, err }));
      });
  });

  after(async () => {
    await hub?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('models ID lists the variants with sizes, support and the default, before any download', async () => {
    const r = await run('models', REPO);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, new RegExp(`${REPO}@${hub.commitOf(REPO)}`));
    assert.match(r.out, /\| fp32\s+\| onnx\/model\.onnx\s+\| 1\.\d MB \| exact/);
    assert.match(r.out, /\| fp16 \(default\) \| onnx\/model_fp16\.onnx \| \d+ KB\s+\| exact/);
    assert.ok(!existsSync(join(work, 'hub', 'models--lrp-test--stories260k', 'blobs')));
    const bad = await run('models', PYTORCH_REPO);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /^error: .*Optimum.*onnx-community/);
  });

  it('attribute --model ID --dtype fp32: download progress on stderr (one line per stage), JSON on stdout untouched', async () => {
    const r = await run('attribute', '--model', REPO, '--dtype', 'fp32', '--prompt', PROMPT, '--json', '-');
    assert.equal(r.code, 0, r.err);
    const result = JSON.parse(r.out) as { model: { ref: string; onnx: string } };
    assert.equal(result.model.ref, `${REPO}@${hub.commitOf(REPO)}`);
    assert.match(result.model.onnx, /onnx\/model\.onnx$/);
    assert.match(r.err, /downloading lrp-test\/stories260k\/onnx\/model\.onnx…\n/);
    assert.match(r.err, /downloading lrp-test\/stories260k\/onnx\/model\.onnx █+ 1\.\d MB\/1\.\d MB .*\/s/);
    assert.doesNotMatch(r.err, /\r/, 'no redraws when stderr is not a terminal');
    const quiet = await run('attribute', '--model', REPO, '--dtype', 'fp16', '--prompt', PROMPT, '--json', '-', '--quiet');
    assert.equal(quiet.code, 0, quiet.err);
    assert.equal(quiet.err, '');
    assert.match((JSON.parse(quiet.out) as { model: { onnx: string } }).model.onnx, /model_fp16\.onnx$/);
  });

  it('a missing variant is refused, naming the ones the repo has', async () => {
    const r = await run('attribute', '--model', REPO, '--dtype', 'q4', '--prompt', PROMPT);
    assert.equal(r.code, 1);
    assert.match(r.err, /no q4 variant.*It has: fp32 \(1\.\d MB\), fp16/);
  });
});

describe('progress display', () => {
  it('on a terminal: one bar redrawn in place with rate and ETA; off a terminal: a line when a stage starts and ends', () => {
    let t = 0;
    const tty = { text: '', isTTY: true, write: (s: string) => (tty.text += s) };
    const d = new ProgressDisplay(tty, false, () => t);
    d.update({ stage: 'download', done: 0, total: 4 * 2 ** 20, unit: 'bytes', detail: 'a.onnx' });
    t = 1000;
    d.update({ stage: 'download', done: 2 ** 20, total: 4 * 2 ** 20, unit: 'bytes', detail: 'a.onnx' });
    assert.match(tty.text, /\rdownloading a\.onnx █{6}░{18} 1\.0 MB\/4\.0 MB 1\.0 MB\/s ETA 0:03 \(0:01\)/);
    t = 2000;
    d.stage('collect', 3, 3);
    assert.match(tty.text, /\n\rcollecting reference relevance █{24} 3\/3 /);
    const log = { text: '', write: (s: string) => (log.text += s) };
    const p = new ProgressDisplay(log, false, () => t);
    p.stage('sweep', 0, 2);
    p.stage('sweep', 1, 2);
    t = 4000;
    p.stage('sweep', 2, 2);
    assert.equal(log.text, 'sweeping…\nsweeping ████████████████████████ 2/2 1.0/s (0:02)\n');
    const quiet = { text: '', write: (s: string) => (quiet.text += s) };
    new ProgressDisplay(quiet, true).stage('sweep', 1, 1);
    assert.equal(quiet.text, '');
  });
});

describe('Select Model… variant list', () => {
  it('shows each variant with its size, support and cache state, the default marked', () => {
    const items = variantItems({
      repo: 'org/m',
      commit: 'c',
      cached: ['fp16'],
      variants: [
        { dtype: 'fp32', file: 'onnx/model.onnx', dataFiles: ['onnx/model.onnx_data'], bytes: 4 * 2 ** 30, support: 'exact' },
        { dtype: 'fp16', file: 'onnx/model_fp16.onnx', dataFiles: [], bytes: 2 * 2 ** 30, support: 'exact' },
        { dtype: 'q8', file: 'onnx/model_quantized.onnx', dataFiles: [], bytes: 2 ** 30, support: 'approximate' },
        { dtype: 'bnb4', file: 'onnx/model_bnb4.onnx', dataFiles: [], bytes: 2 ** 29, support: 'unsupported' },
      ],
    });
    assert.deepEqual(
      items.map((i) => [i.label, i.description, i.detail]),
      [
        ['fp32', '4.0 GB', 'onnx/model.onnx + onnx/model.onnx_data · relevance exact'],
        ['fp16 (default)', '2.0 GB, cached', 'onnx/model_fp16.onnx · relevance exact'],
        ['q8', '1.0 GB', 'onnx/model_quantized.onnx · relevance approximate (activations rounded at run time)'],
        ['bnb4', '512 MB', 'onnx/model_bnb4.onnx · cannot be attributed (MatMulBnb4)'],
      ],
    );
  });
});
