// Bundles the extension host, the engine worker, the CLI, the webview front-ends and (not for --production) the
// benchmarks (bench/main.ts → dist/bench.js, beside the CLI it runs).
//   node esbuild.mjs                      development bundles in dist/ (source maps, extension-host tests, bench)
//   node esbuild.mjs --watch              the same, rebuilt on change
//   node esbuild.mjs --production         minified bundles in dist/, no maps, no tests (npm pack runs this)
//   node esbuild.mjs --package [--target <t>]   a platform-specific VSIX in dist/vsix/ (docs/packaging.md)
import * as esbuild from 'esbuild';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';

const args = process.argv.slice(2);
const watch = args.includes('--watch');
const packaging = args.includes('--package');
const production = packaging || args.includes('--production');

/**
 * Only onnxruntime-node (a native binding) and its onnxruntime-common stay outside the bundles; everything else,
 * @huggingface/transformers included, is bundled, so a VSIX or an npm install needs no other package.
 */
const external = ['vscode', 'onnxruntime-node', 'onnxruntime-common'];

/**
 * transformers.js imports sharp at load time for image inputs, which LRP Lens never reads; it refuses to load
 * when sharp is absent, so the bundles get a stand-in that fails only if an image is ever decoded.
 */
const noSharp = {
  name: 'no-sharp',
  setup(build) {
    build.onResolve({ filter: /^sharp$/ }, () => ({ path: 'sharp', namespace: 'no-sharp' }));
    build.onLoad({ filter: /.*/, namespace: 'no-sharp' }, () => ({
      contents: "module.exports = () => { throw new Error('LRP Lens does not read images (sharp is not shipped).'); };",
      loader: 'js',
    }));
  },
};

/** When the extension module started and finished loading: activate() logs its code-loading time from these. */
const loadClock = { js: 'var LRP_LENS_LOAD_START = typeof performance === "object" ? performance.now() : undefined;' };
const loadedClock = { js: 'var LRP_LENS_LOAD_END = typeof performance === "object" ? performance.now() : undefined;' };

function bundles(outdir, { cli = true, tests = !production } = {}) {
  const nodeEntries = [
    cli && { in: 'src/cli/main.ts', out: 'cli' },
    { in: 'src/extension.ts', out: 'extension' },
    { in: 'src/worker/main.ts', out: 'worker' },
    tests && { in: 'bench/main.ts', out: 'bench' },
  ].filter((e) => e && existsSync(e.in));
  const node = {
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: !production,
    minify: production,
    external,
    plugins: [noSharp],
    logLevel: 'warning',
  };
  const builds = [
    { ...node, entryPoints: nodeEntries.filter((e) => e.out !== 'extension'), outdir },
    { ...node, entryPoints: nodeEntries.filter((e) => e.out === 'extension'), outdir, banner: loadClock, footer: loadedClock },
    {
      // The webview runs in a browser sandbox: one IIFE with @vscode-elements/elements bundled in.
      entryPoints: {
        relevancePanel: 'webview/relevancePanel/main.ts',
        circuitPanel: 'webview/circuitPanel/main.ts',
        reportPanel: 'webview/reportPanel/main.ts',
      },
      bundle: true,
      platform: 'browser',
      target: 'es2022',
      format: 'iife',
      outdir: join(outdir, 'webview'),
      sourcemap: !production,
      minify: production,
      logLevel: 'warning',
    },
  ];
  // Extension-host tests (test/vscode): run inside VS Code or code-server, so bundled like the extension, with
  // mocha loaded from node_modules through its CommonJS build (its package entry is ESM, which Node 20's require
  // cannot load).
  if (tests && existsSync('test/vscode/index.ts')) {
    builds.push({
      ...node,
      entryPoints: ['test/vscode/index.ts', 'test/vscode/runTest.ts', 'test/vscode/extension.test.ts', 'test/vscode/hubModel.test.ts'],
      outdir: join(outdir, 'test', 'vscode'),
      external: [...external, '@vscode/test-electron', 'mocha/lib/mocha.cjs'],
      alias: { mocha: 'mocha/lib/mocha.cjs' },
    });
  }
  return builds;
}

// ---------------------------------------------------------------------------------------------------------------
// Packaging: one VSIX per platform, each with only its own onnxruntime binary.

/** The platforms a VSIX is built for: VS Code's target name → onnxruntime-node's binary folder. */
const TARGETS = {
  'linux-x64': 'linux/x64',
  'linux-arm64': 'linux/arm64',
  'darwin-x64': 'darwin/x64',
  'darwin-arm64': 'darwin/arm64',
  'win32-x64': 'win32/x64',
};
const BUDGET_MB = 40;
const MB = 1024 * 1024;

class PackageError extends Error {}

/** `--target <t>` or `--target=<t>`; default: this machine. */
function chosenTarget() {
  const i = args.findIndex((a) => a === '--target' || a.startsWith('--target='));
  const named = i < 0 ? undefined : args[i].includes('=') ? args[i].slice('--target='.length) : args[i + 1];
  const target = named ?? `${process.platform}-${process.arch}`;
  if (!Object.hasOwn(TARGETS, target)) {
    const what = named === undefined ? `This machine (${target}) is not a packaging target` : `Unknown target '${target}'`;
    throw new PackageError(`${what}. Valid targets: ${Object.keys(TARGETS).join(', ')} (npm run package -- --target <t>).`);
  }
  return target;
}

/** Entry names of a zip file, read from its central directory. */
function zipEntries(file) {
  const buf = readFileSync(file);
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new PackageError(`${file} is not a zip file.`);
  const count = buf.readUInt16LE(eocd + 10);
  const names = [];
  for (let at = buf.readUInt32LE(eocd + 16), n = 0; n < count; n++) {
    const nameLength = buf.readUInt16LE(at + 28);
    names.push(buf.toString('utf8', at + 46, at + 46 + nameLength));
    at += 46 + nameLength + buf.readUInt16LE(at + 30) + buf.readUInt16LE(at + 32);
  }
  return names;
}

/**
 * A staging folder vsce packs from: the production bundles built into it, the rest linked from the repository,
 * and a manifest without npm's "files" (vsce refuses "files" next to a .vscodeignore). Its .vscodeignore is the
 * repository's plus the one line that keeps this target's onnxruntime binary.
 */
async function stage(target, dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const b of bundles(join(dir, 'dist'), { cli: false, tests: false })) await esbuild.build(b);
  const manifest = JSON.parse(readFileSync('package.json', 'utf8'));
  delete manifest.files;
  writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  const keepBinary = `!node_modules/onnxruntime-node/bin/napi-v6/${TARGETS[target]}/*`;
  writeFileSync(join(dir, '.vscodeignore'), `${readFileSync('.vscodeignore', 'utf8').trimEnd()}\n${keepBinary}\n`);
  for (const f of ['README.md', 'LICENSE', 'CHANGELOG.md']) copyFileSync(f, join(dir, f));
  for (const d of ['media', 'node_modules']) symlinkSync(resolve(d), join(dir, d), 'junction');
}

function vsce(cwd, vsceArgs) {
  const bin = resolve('node_modules/@vscode/vsce/vsce');
  const run = spawnSync(process.execPath, [bin, ...vsceArgs], { cwd, stdio: 'inherit' });
  if (run.status !== 0) throw new PackageError(`vsce ${vsceArgs.join(' ')} failed (exit ${run.status ?? run.signal}).`);
}

/** The VSIX must hold the bundles and this platform's onnxruntime binary, and fit the size budget. */
function checkVsix(vsix, target) {
  const entries = new Set(zipEntries(vsix));
  const binary = `extension/node_modules/onnxruntime-node/bin/napi-v6/${TARGETS[target]}/onnxruntime_binding.node`;
  const required = [
    'extension/dist/extension.js',
    'extension/dist/worker.js',
    'extension/node_modules/onnxruntime-common/package.json',
    binary,
  ];
  const missing = required.filter((e) => !entries.has(e));
  if (missing.length > 0) {
    rmSync(vsix);
    const why = existsSync(join('node_modules/onnxruntime-node/bin/napi-v6', TARGETS[target]))
      ? 'check .vscodeignore'
      : `onnxruntime-node ${JSON.parse(readFileSync('node_modules/onnxruntime-node/package.json', 'utf8')).version} ships no binary for ${target}`;
    throw new PackageError(`${basename(vsix)} would lack ${missing.join(', ')} (${why}); no VSIX written.`);
  }
  const size = statSync(vsix).size;
  const line = `${relative('.', vsix)}: ${(size / MB).toFixed(1)} MB (budget ${BUDGET_MB} MB), ${entries.size} files`;
  if (size > BUDGET_MB * MB) {
    rmSync(vsix);
    throw new PackageError(`${line}: over the size budget; no VSIX written.`);
  }
  console.log(line);
}

async function packageVsix() {
  const target = chosenTarget();
  const { name, version } = JSON.parse(readFileSync('package.json', 'utf8'));
  const dir = resolve('dist/vsix', target);
  const vsix = resolve('dist/vsix', `${name}-${version}-${target}.vsix`);
  rmSync(vsix, { force: true });
  try {
    await stage(target, dir);
    vsce(dir, ['package', '--target', target, '--out', vsix, '--follow-symlinks', '--no-rewrite-relative-links']);
    checkVsix(vsix, target);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

try {
  if (packaging) await packageVsix();
  else if (watch) for (const b of bundles('dist')) await (await esbuild.context(b)).watch();
  else for (const b of bundles('dist')) await esbuild.build(b);
} catch (err) {
  if (!(err instanceof PackageError)) throw err;
  console.error(`package: ${err.message}`);
  process.exit(1);
}
