import tseslint from 'typescript-eslint';
import { importX, createNodeResolver } from 'eslint-plugin-import-x';

// The layers (see CONTRIBUTING): onnx → relevance → runtime → the engine's features → worker/CLI → extension.
// Each rule below lists every restriction for its files: a later config object replaces a rule, it does not merge.
const vscode = { name: 'vscode', message: 'src/engine never imports vscode: the engine runs in the worker and the CLI.' };
const onnxruntime = {
  regex: '^onnxruntime-node(/.*)?$',
  message: 'Only src/engine/runtime/session.ts imports onnxruntime-node: use Session, HostTensor and hostTensor from there.',
};
const runtime = {
  regex: '(^|/)runtime(/|$)',
  message: 'relevance/ and onnx/ never import runtime/ (layers point down); shared types live in onnx/ or relevance/.',
};
const aboveOnnx = {
  regex: '^\\.\\./(?!errors$|writeAtomic$)',
  message: 'onnx/ is the bottom layer: it imports only its own modules, errors.ts and writeAtomic.ts.',
};
const restrict = (paths, patterns) => ({ 'no-restricted-imports': ['error', { paths, patterns }] });

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench/results/**', '.vscode-test/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-restricted-imports': 'off',
    },
  },
  {
    // Layers point one way: no module imports itself back through others (type-only imports included).
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: { 'import-x/extensions': ['.ts'], 'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts'] })] },
    rules: { 'import-x/no-cycle': 'error' },
  },
  { files: ['src/**/*.ts'], ignores: ['src/engine/**'], rules: restrict([], [onnxruntime]) },
  { files: ['src/engine/**/*.ts'], ignores: ['src/engine/runtime/session.ts'], rules: restrict([vscode], [onnxruntime]) },
  { files: ['src/engine/runtime/session.ts'], rules: restrict([vscode], []) },
  { files: ['src/engine/relevance/**/*.ts'], rules: restrict([vscode], [onnxruntime, runtime]) },
  { files: ['src/engine/onnx/**/*.ts'], rules: restrict([vscode], [onnxruntime, runtime, aboveOnnx]) },
);
