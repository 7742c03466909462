/**
 * Which onnxruntime binaries this copy of LRP Lens carries, and what to install when this machine's is not
 * among them. A VSIX carries one platform's binary (docs/packaging.md); npm installs carry them all.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { name, version } from '../../../package.json';

/** `os-arch` (VS Code's target names) of every onnxruntime-node binary present, or [] without the package. */
export function carriedPlatforms(): string[] {
  let bin: string;
  try {
    bin = join(dirname(require.resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6');
  } catch {
    return [];
  }
  const dirs = (dir: string) => (existsSync(dir) ? readdirSync(dir) : []);
  return dirs(bin).flatMap((os) =>
    dirs(join(bin, os))
      .filter((arch) => existsSync(join(bin, os, arch, 'onnxruntime_binding.node')))
      .map((arch) => `${os}-${arch}`),
  );
}

/** The message for onnxruntime-node failing to load: this machine's platform and the VSIX it needs. */
export function runtimeMissingMessage(
  cause: string,
  platform = `${process.platform}-${process.arch}`,
  carried = carriedPlatforms(),
): string {
  const vsix = `${name}-${version}-${platform}.vsix`;
  const what = carried.includes(platform)
    ? `onnxruntime's binary for this machine (${platform}) did not load: ${cause}.`
    : carried.length > 0
      ? `This copy of LRP Lens carries onnxruntime for ${carried.join(', ')} only; this machine is ${platform}.`
      : `onnxruntime could not be loaded on this machine (${platform}): ${cause}.`;
  return (
    `${what} Install the LRP Lens package built for ${platform}: ${vsix} ` +
    `(code --install-extension ${vsix}, or Extensions → … → Install from VSIX…); for the CLI, npm install it on this machine.`
  );
}
