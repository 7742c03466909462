// Bundles the extension host, the engine worker, the CLI, the webview front-ends and (not for --production) the
// benchmarks (bench/main.ts → dist/bench.js, beside the CLI it runs).
import * as esbuild from 'esbuild';
import { existsSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

/** Native and large runtime packages stay outside the bundles and are loaded from node_modules. */
const external = ['vscode', 'onnxruntime-node', '@huggingface/transformers', 'sharp'];

const nodeEntries = [
  { in: 'src/cli/main.ts', out: 'cli' },
  { in: 'src/extension.ts', out: 'extension' },
  { in: 'src/worker/main.ts', out: 'worker' },
  ...(production ? [] : [{ in: 'bench/main.ts', out: 'bench' }]),
].filter((e) => existsSync(e.in));

const builds = [
  {
    entryPoints: nodeEntries,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outdir: 'dist',
    sourcemap: !production,
    minify: production,
    external,
    logLevel: 'warning',
  },
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
    outdir: 'dist/webview',
    sourcemap: !production,
    minify: production,
    logLevel: 'warning',
  },
];

// Extension-host tests (test/vscode): run inside VS Code or code-server, so bundled like the extension, with
// mocha loaded from node_modules through its CommonJS build (its package entry is ESM, which Node 20's require
// cannot load).
if (existsSync('test/vscode/index.ts')) {
  builds.push({
    entryPoints: ['test/vscode/index.ts', 'test/vscode/runTest.ts', 'test/vscode/extension.test.ts', 'test/vscode/hubModel.test.ts'],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outdir: 'dist/test/vscode',
    sourcemap: !production,
    external: [...external, '@vscode/test-electron', 'mocha/lib/mocha.cjs'],
    alias: { mocha: 'mocha/lib/mocha.cjs' },
    logLevel: 'warning',
  });
}

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  for (const b of builds) await esbuild.build(b);
}
