/**
 * stories260k (from ../shared) as hub repos for the mock hub: fp32 and fp16 variants, fp32 with its weights in
 * `onnx/model.onnx_data`, a gated copy, a second revision, and a PyTorch-only repo.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeModel, readModel, writeModelWithExternalData } from '../../src/engine/onnx/io';
import { toHalf } from '../fixtures/exportVariants';
import type { MockFile, MockRepo } from './mockHub';

export const REPO = 'lrp-test/stories260k';
export const EXTERNAL_REPO = 'lrp-test/stories260k-external';
export const GATED_REPO = 'lrp-test/stories260k-gated';
export const PYTORCH_REPO = 'lrp-test/pytorch-only';

export function stories260kRepos(storiesDir: string): MockRepo[] {
  const read = (p: string) => readFileSync(join(storiesDir, p));
  const common: MockFile[] = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json'].map((path) => ({
    path,
    bytes: read(path),
  }));
  const fp32 = read('onnx/model.onnx');
  const fp16 = Buffer.from(encodeModel(toHalf(readModel(join(storiesDir, 'onnx', 'model.onnx')))));
  const work = mkdtempSync(join(tmpdir(), 'lrp-hub-fixture-'));
  writeModelWithExternalData(readModel(join(storiesDir, 'onnx', 'model.onnx')), join(work, 'model.onnx'));
  const external = [
    { path: 'onnx/model.onnx', bytes: readFileSync(join(work, 'model.onnx')) },
    { path: 'onnx/model.onnx_data', bytes: readFileSync(join(work, 'model.onnx_data')) },
  ];
  rmSync(work, { recursive: true, force: true });
  const fp32File = { path: 'onnx/model.onnx', bytes: fp32 };
  return [
    {
      id: REPO,
      files: [
        ...common,
        fp32File,
        { path: 'onnx/model_fp16.onnx', bytes: fp16 },
        { path: 'README.md', bytes: Buffer.from('# stories260k\n') },
      ],
      revisions: { v1: [...common, fp32File] },
    },
    { id: EXTERNAL_REPO, files: [...common, ...external] },
    { id: GATED_REPO, files: [...common, fp32File], gated: true },
    {
      id: PYTORCH_REPO,
      files: [...common.filter((f) => f.path === 'config.json'), { path: 'model.safetensors', bytes: Buffer.alloc(4096, 7) }],
    },
  ];
}
