import assert from 'node:assert/strict';
import { carriedPlatforms, runtimeMissingMessage } from '../../src/engine/runtime/nativeRuntime';

describe('onnxruntime binary missing: the message', () => {
  it('names the platforms this copy carries, this machine, and the VSIX to install', () => {
    const m = runtimeMissingMessage("Cannot find module '../bin/napi-v6/darwin/arm64/onnxruntime_binding.node'", 'darwin-arm64', [
      'linux-x64',
    ]);
    assert.match(m, /^This copy of LRP Lens carries onnxruntime for linux-x64 only; this machine is darwin-arm64\./);
    assert.match(m, /code --install-extension lrp-lens-\d+\.\d+\.\d+-darwin-arm64\.vsix/);
  });

  it("gives the loader's reason when this machine's binary is present but does not load", () => {
    const m = runtimeMissingMessage('libonnxruntime.so.1: cannot open shared object file', 'linux-x64', ['linux-x64']);
    assert.match(
      m,
      /^onnxruntime's binary for this machine \(linux-x64\) did not load: libonnxruntime\.so\.1: cannot open shared object file\./,
    );
  });

  it('finds every binary of the development install (npm ships them all)', () => {
    assert.ok(carriedPlatforms().includes(`${process.platform}-${process.arch}`), carriedPlatforms().join(', '));
  });
});
