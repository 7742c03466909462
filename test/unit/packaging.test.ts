/**
 * The product as shipped: the linux-x64 VSIX's contents and size, the package step's refusals, a VSIX for another
 * platform failing with the platform error, and the npm tarball's CLI installed into an empty folder.
 * `npm test` runs `npm run package -- --target linux-x64` first; run alone, this suite packages it when absent.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { build } from 'esbuild';
import { join, resolve } from 'node:path';
import { EngineClient, EngineError } from '../../src/worker/client';
import { extractZip, zipEntries } from '../support/zip';
import { STORIES, TINYSTORIES, requireShared } from '../support/sharedFolder';

const ROOT = resolve(__dirname, '..', '..');
const { name, version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const vsixPath = (target: string) => join(ROOT, 'dist', 'vsix', `${name}-${version}-${target}.vsix`);
const PROMPT = 'Once upon a time, there was a little girl named';
const MB = 1024 * 1024;

function packageStep(target: string): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, ['esbuild.mjs', '--package', '--target', target], { cwd: ROOT, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Everything a linux-x64 VSIX may hold: what runs, and nothing else. */
const ALLOWED_LINUX_X64 = [
  /^\[Content_Types\]\.xml$/,
  /^extension\.vsixmanifest$/,
  /^extension\/(package\.json|readme\.md|changelog\.md|LICENSE\.txt)$/,
  /^extension\/dist\/(extension|worker)\.js$/,
  /^extension\/dist\/webview\/\w+\.js$/,
  /^extension\/media\/[\w-]+\.(css|svg|png)$/,
  /^extension\/media\/screenshots\/[\w-]+\.png$/,
  /^extension\/media\/syntaxes\/[\w-]+\.tmLanguage\.json$/,
  /^extension\/node_modules\/onnxruntime-node\/(package\.json|dist\/\w+\.js)$/,
  /^extension\/node_modules\/onnxruntime-node\/bin\/napi-v6\/linux\/x64\/(onnxruntime_binding\.node|libonnxruntime\.so\.1)$/,
  /^extension\/node_modules\/onnxruntime-common\/(package\.json|dist\/cjs\/package\.json|dist\/cjs\/[\w-]+\.js)$/,
];

describe('packaging: the linux-x64 VSIX', function () {
  let entries: string[];
  before(function () {
    this.timeout(300000);
    if (!existsSync(vsixPath('linux-x64'))) assert.equal(packageStep('linux-x64').code, 0);
    entries = zipEntries(readFileSync(vsixPath('linux-x64'))).map((e) => e.name);
  });

  it('holds only what runs: bundles, media, onnxruntime-node with its linux-x64 binary', () => {
    const outside = entries.filter((e) => !ALLOWED_LINUX_X64.some((re) => re.test(e)));
    assert.deepEqual(outside, [], `entries outside the allowed set:\n${outside.join('\n')}`);
    for (const needed of [
      'extension/dist/extension.js',
      'extension/dist/worker.js',
      'extension/dist/webview/relevancePanel.js',
      'extension/media/icon.png',
      'extension/LICENSE.txt',
      'extension/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node',
      'extension/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1',
    ])
      assert.ok(entries.includes(needed), `${needed} is missing`);
  });

  it(`fits the size budget (≤ 40 MB)`, () => {
    const mb = statSync(vsixPath('linux-x64')).size / MB;
    assert.ok(mb <= 40, `${mb.toFixed(1)} MB`);
  });

  it('is marked for linux-x64 and carries the marketplace metadata and the licence', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lrp-vsix-'));
    try {
      extractZip(vsixPath('linux-x64'), dir);
      assert.match(readFileSync(join(dir, 'extension.vsixmanifest'), 'utf8'), /TargetPlatform="linux-x64"/);
      const manifest = JSON.parse(readFileSync(join(dir, 'extension', 'package.json'), 'utf8'));
      assert.equal(manifest.license, 'BSD-3-Clause-Clear');
      assert.equal(manifest.publisher, 'lrp-lens');
      assert.deepEqual(manifest.categories, ['Data Science', 'Machine Learning', 'Visualization']);
      assert.equal(manifest.files, undefined, "npm's file list stays out of the extension manifest");
      assert.match(readFileSync(join(dir, 'extension', 'LICENSE.txt'), 'utf8'), /The Clear BSD License[\s\S]*LRP Lens contributors/);
      const icon = readFileSync(join(dir, 'extension', 'media', 'icon.png'));
      assert.deepEqual([icon.readUInt32BE(16), icon.readUInt32BE(20)], [128, 128], 'icon.png is 128 × 128');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('packaging: the extension host bundle', () => {
  it('leaves the ONNX reader, the relevance compiler and transformers.js to the engine process (activation stays light)', async () => {
    const { metafile } = await build({
      entryPoints: [join(ROOT, 'src', 'extension.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      write: false,
      metafile: true,
      outfile: 'extension.js',
      external: ['vscode', 'onnxruntime-node', 'onnxruntime-common'],
      logLevel: 'error',
    });
    const bundled = Object.values(metafile.outputs).flatMap((o) => Object.keys(o.inputs).filter((f) => o.inputs[f].bytesInOutput > 0));
    const heavy = bundled.filter((f) =>
      /node_modules\/(onnx-proto|protobufjs|@huggingface)\/|src\/engine\/(relevance|onnx\/io|runtime\/compile)/.test(f),
    );
    assert.deepEqual(heavy, []);
  });

  it('loads no native code: requiring dist/extension.js leaves onnxruntime-node unloaded', () => {
    // A stand-in for the vscode module (every property, call and construction gives the stand-in back).
    const script = `
      const Module = require('module');
      const stub = new Proxy(function () {}, { get: (t, k) => (k === '__esModule' ? false : stub), apply: () => stub, construct: () => stub });
      const load = Module._load;
      Module._load = function (request, ...rest) { return request === 'vscode' ? stub : load.call(this, request, ...rest); };
      require(${JSON.stringify(join(ROOT, 'dist', 'extension.js'))});
      console.log(JSON.stringify(Object.keys(require.cache)));`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const loaded = (JSON.parse(r.stdout) as string[]).filter((f) => /onnxruntime/.test(f));
    assert.deepEqual(loaded, []);
  });
});

describe('packaging: the package step refuses', function () {
  this.timeout(120000);

  it('an unknown target, naming the valid ones', () => {
    const r = packageStep('linux-sparc');
    assert.equal(r.code, 1);
    assert.match(r.out, /Unknown target 'linux-sparc'\. Valid targets: linux-x64, linux-arm64, darwin-x64, darwin-arm64, win32-x64/);
  });

  it('a VSIX without its platform binary (onnxruntime-node 1.30 has none for darwin-x64)', () => {
    const r = packageStep('darwin-x64');
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /would lack extension\/node_modules\/onnxruntime-node\/bin\/napi-v6\/darwin\/x64\/onnxruntime_binding\.node/);
    assert.ok(!existsSync(vsixPath('darwin-x64')), 'no VSIX is left behind');
  });
});

describe('packaging: a VSIX for another platform', function () {
  this.timeout(300000);
  const other = process.platform === 'linux' && process.arch === 'arm64' ? 'linux-x64' : 'linux-arm64';
  const here = `${process.platform}-${process.arch}`;
  let dir: string;
  before(function () {
    requireShared(this);
    assert.equal(packageStep(other).code, 0);
    dir = mkdtempSync(join(tmpdir(), 'lrp-other-'));
    extractZip(vsixPath(other), dir);
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  it('answers Compute Relevance with an error naming this platform and the VSIX it needs, not a stack trace', async () => {
    const client = new EngineClient({ workerPath: join(dir, 'extension', 'dist', 'worker.js') });
    try {
      const params = { model: STORIES, rule: 'attnlrp', device: 'cpu', offline: true, request: { prompt: PROMPT } } as const;
      const err = await client.request('attribute', params).then(
        () => assert.fail('the attribution should fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof EngineError, String(err));
      assert.equal(err.reason, 'runtime-failure');
      assert.match(err.message, new RegExp(`carries onnxruntime for ${other} only; this machine is ${here}\\.`));
      assert.ok(err.message.includes(`${name}-${version}-${here}.vsix`), err.message);
      assert.doesNotMatch(err.message, /\n\s+at /);
    } finally {
      client.dispose();
    }
  });
});

describe('packaging: the CLI as an npm package', function () {
  this.timeout(600000);
  let app: string;
  const npx = (...args: string[]) => spawnSync('npx', ['--no-install', 'lrp-lens', ...args], { cwd: app, encoding: 'utf8' });
  before(function () {
    requireShared(this);
    const work = mkdtempSync(join(tmpdir(), 'lrp-npm-'));
    const packed = spawnSync('npm', ['pack', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(packed.status, 0, packed.stderr);
    const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
    assert.ok(tgz, 'npm pack wrote no tarball');
    app = join(work, 'app');
    mkdirSync(app);
    const args = ['install', '--prefer-offline', '--no-audit', '--no-fund', '--onnxruntime-node-install=skip', join(work, tgz)];
    const installed = spawnSync('npm', args, { cwd: app, encoding: 'utf8' });
    assert.equal(installed.status, 0, installed.stderr);
  });
  after(() => app && rmSync(resolve(app, '..'), { recursive: true, force: true }));

  it('installs only runtime packages: no transformers.js, onnxruntime-web or sharp', () => {
    const modules = readdirSync(join(app, 'node_modules'));
    assert.ok(modules.includes('onnxruntime-node') && modules.includes('lrp-lens'), modules.join(' '));
    for (const dev of ['@huggingface', 'onnxruntime-web', 'sharp', '@img', 'commander', 'protobufjs'])
      assert.ok(!modules.includes(dev), `${dev} was installed`);
    assert.deepEqual(readdirSync(join(app, 'node_modules', 'lrp-lens', 'dist')), ['cli.js']);
  });

  it('npx lrp-lens attribute explains " Lily" on stories260k', () => {
    const r = npx('attribute', '--model', STORIES, '--prompt', PROMPT, '--json', '-');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).target.text, ' Lily');
  });

  it('npx lrp-lens inspect reports the model', () => {
    const r = npx('inspect', '--model', STORIES, '--json', '-');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).family, 'llama');
  });

  it('npx lrp-lens prune writes a mask', () => {
    const out = join(app, 'mask');
    const r = npx(
      'prune',
      '--model',
      STORIES,
      '--reference',
      TINYSTORIES,
      '--samples',
      '4',
      '--seq-len',
      '32',
      '--sparsity',
      '0.5',
      '--out',
      out,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(`${out}.safetensors`) && existsSync(`${out}.json`), r.stdout);
  });
});
