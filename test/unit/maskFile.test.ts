/** Mask files: bit layout, round trips, refusal of foreign masks, atomic writes, corrupt files. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LrpLensError } from '../../src/engine/errors';
import { writeModel, writeModelWithExternalData } from '../../src/engine/onnx/io';
import { buildLlamaLike } from '../fixtures/torchExports';
import type { SyntheticConfig } from '../fixtures/torchExports';
import { tensorDims } from '../../src/engine/onnx/tensor';
import { decodeMaskSafetensors, encodeMaskSafetensors, packBits, unpackBits } from '../../src/engine/pruning/maskBits';
import { loadMask, modelIdentity, saveMask } from '../../src/engine/pruning/maskFile';
import type { MaskDescription } from '../../src/engine/pruning/maskManifest';
import type { Mask } from '../../src/engine/weights/types';

const CFG: SyntheticConfig = { layers: 2, hidden: 16, heads: 4, ffn: 32, vocab: 40, maxPositions: 32, dtype: 'float32', seed: 3 };

function randomKeep(n: number, seed: number): Uint8Array {
  let x = seed;
  return Uint8Array.from({ length: n }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) & 1);
}

function maskOf(entries: [string, number[]][]): Mask {
  return new Map(
    entries.map(([name, dims], i) => [
      name,
      {
        dims,
        keep: randomKeep(
          dims.reduce((a, b) => a * b, 1),
          i + 1,
        ),
      },
    ]),
  );
}

function description(contentHash = 'sha256:00'): MaskDescription {
  return {
    model: { id: 'test-model', contentHash },
    method: 'lrp',
    allocation: 'row',
    targetSparsity: 0.5,
    metrics: { perplexity: [{ sparsity: 0.5, value: 12.3 }] },
    extra: { note: 'kept' },
  };
}

/** safetensors bytes from a header object and data, for hand-made corrupt files. */
function safetensors(header: object, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = Buffer.from(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const META = { format: 'lrp-lens-mask', version: '1', bit_order: 'little', dims: JSON.stringify({ w: [3, 5] }) };

describe('mask files', () => {
  let work: string;
  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), 'lrp-mask-'));
  });

  it('packs bits LSB first: element j is bit j % 8 of byte j / 8, the last byte padded with zeros', () => {
    assert.deepEqual([...packBits(Uint8Array.from([1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]))], [0x01, 0x06]);
    assert.deepEqual([...packBits(Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 1]))], [0x80]);
    for (const n of [0, 1, 7, 8, 9, 63, 64, 65, 1001]) {
      const keep = randomKeep(n, n);
      assert.deepEqual(unpackBits(packBits(keep), n), keep, `n = ${n}`);
    }
  });

  it('round-trips masks of any size through safetensors + manifest, bit for bit', () => {
    const mask = maskOf([
      ['a', [3, 5]],
      ['b.weight', [1, 1]],
      ['onnx::MatMul_7', [8, 8]],
      ['c', [7, 13]],
      ['empty', [0, 4]],
    ]);
    const { paths, manifest } = saveMask(join(work, 'mask'), mask, description());
    assert.deepEqual(readdirSync(work).sort(), ['mask.json', 'mask.safetensors']);
    const loaded = loadMask(paths.manifest);
    assert.deepEqual([...loaded.mask.keys()].sort(), [...mask.keys()].sort());
    for (const [name, m] of mask) {
      assert.deepEqual(loaded.mask.get(name)!.dims, m.dims, name);
      assert.deepEqual(loaded.mask.get(name)!.keep, m.keep, name);
    }
    assert.deepEqual(loaded.manifest, manifest);
    assert.equal(
      manifest.sparsity.overall,
      [...mask.values()].reduce((a, m) => a + m.keep.filter((k) => k === 0).length, 0) / (15 + 1 + 64 + 91),
    );
    assert.deepEqual(manifest.metrics, { perplexity: [{ sparsity: 0.5, value: 12.3 }] });
    assert.deepEqual(manifest.extra, { note: 'kept' });
  });

  it('writes a plain safetensors file: LE header length, 8-byte aligned JSON header, U8 tensors of ceil(n/8) bytes', () => {
    const mask = maskOf([
      ['w', [3, 5]],
      ['v', [2, 4]],
    ]);
    const bytes = encodeMaskSafetensors(mask);
    const n = Number(Buffer.from(bytes).readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0);
    const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString());
    assert.deepEqual(header.v, { dtype: 'U8', shape: [1], data_offsets: [0, 1] });
    assert.deepEqual(header.w, { dtype: 'U8', shape: [2], data_offsets: [1, 3] });
    assert.deepEqual(JSON.parse(header.__metadata__.dims), { v: [2, 4], w: [3, 5] });
    assert.deepEqual([...bytes.subarray(8 + n + 1)], [...packBits(mask.get('w')!.keep)]);
    assert.equal(bytes.length, 8 + n + 3);
  });

  describe('against a model', () => {
    let onnx: string;
    let matmul: string;
    beforeEach(() => {
      onnx = join(work, 'model.onnx');
      writeModel(buildLlamaLike(CFG), onnx);
      const g = modelIdentity(onnx).graph;
      matmul = g.nodes.find((n) => n.opType === 'MatMul' && g.initializers.has(n.inputs[1]))!.inputs[1];
    });

    function save(mask: Mask, contentHash: string): string {
      return saveMask(join(work, 'm'), mask, description(contentHash)).paths.safetensors;
    }

    it('loads a mask made for the model', () => {
      const model = modelIdentity(onnx, 'llama-like');
      const dims = tensorDims(model.graph.initializers.get(matmul)!);
      const mask = maskOf([[matmul, dims]]);
      const loaded = loadMask(save(mask, model.contentHash), { model });
      assert.deepEqual(loaded.mask.get(matmul)!.keep, mask.get(matmul)!.keep);
    });

    it('hashes content, not paths: a copy hashes the same, different weights or external data differently', () => {
      const model = modelIdentity(onnx);
      assert.equal(model.contentHash, `sha256:${createHash('sha256').update(readFileSync(onnx)).digest('hex')}`);
      mkdirSync(join(work, 'copy'));
      copyFileSync(onnx, join(work, 'copy', 'model.onnx'));
      assert.equal(modelIdentity(join(work, 'copy', 'model.onnx')).contentHash, model.contentHash);
      writeModel(buildLlamaLike({ ...CFG, seed: 4 }), join(work, 'other.onnx'));
      assert.notEqual(modelIdentity(join(work, 'other.onnx')).contentHash, model.contentHash);
      mkdirSync(join(work, 'ext'));
      const ext = join(work, 'ext', 'model.onnx');
      writeModelWithExternalData(buildLlamaLike(CFG), ext, 'model.onnx_data', 64);
      const before = modelIdentity(ext).contentHash;
      const data = readFileSync(join(work, 'ext', 'model.onnx_data'));
      data[100] ^= 1;
      writeFileSync(join(work, 'ext', 'model.onnx_data'), data);
      assert.notEqual(modelIdentity(ext).contentHash, before, 'a changed byte in model.onnx_data changes the hash');
    });

    it('refuses a mask made for other weights (content hash), naming both models and the fix', () => {
      writeModel(buildLlamaLike({ ...CFG, seed: 4 }), join(work, 'other.onnx'));
      const other = modelIdentity(join(work, 'other.onnx'), 'llama-like-seed4');
      const model = modelIdentity(onnx, 'llama-like');
      const dims = tensorDims(model.graph.initializers.get(matmul)!);
      const path = save(maskOf([[matmul, dims]]), other.contentHash);
      assert.throws(
        () => loadMask(path, { model }),
        (e: unknown) =>
          LrpLensError.is(e, 'bad-argument') &&
          e.message.includes('made for model test-model') &&
          e.message.includes(other.contentHash) &&
          e.message.includes(`not for llama-like (${model.contentHash})`) &&
          /content hash/.test(e.message) &&
          /Compute a mask for llama-like/.test(e.message),
      );
    });

    it('refuses a mask naming an initializer the model lacks, or with other dims', () => {
      const model = modelIdentity(onnx, 'llama-like');
      const dims = tensorDims(model.graph.initializers.get(matmul)!);
      assert.throws(
        () => loadMask(save(maskOf([['nope.weight', [2, 2]]]), model.contentHash), { model }),
        (e: unknown) => LrpLensError.is(e, 'bad-argument') && /the model has no initializer nope\.weight/.test(e.message),
      );
      const wrong = [dims[1], dims[0] + 1];
      assert.throws(
        () => loadMask(save(maskOf([[matmul, wrong]]), model.contentHash), { model }),
        (e: unknown) =>
          LrpLensError.is(e, 'bad-argument') &&
          e.message.includes(`initializer ${matmul} is [${dims.join(', ')}] in the model but [${wrong.join(', ')}] in the mask`),
      );
    });
  });

  it('a failed write leaves the previous pair intact and no temporary files', () => {
    const first = maskOf([['w', [9, 9]]]);
    const { paths } = saveMask(join(work, 'mask'), first, description());
    const before = [readFileSync(paths.safetensors), readFileSync(paths.manifest)];
    for (const failAt of [1, 2]) {
      let calls = 0;
      const failing = (fd: number, data: Uint8Array): void => {
        if (++calls < failAt) return void writeSync(fd, data);
        writeSync(fd, data, 0, data.length >> 1);
        throw new Error('ENOSPC: no space left on device');
      };
      assert.throws(
        () =>
          saveMask(
            join(work, 'mask'),
            maskOf([
              ['w', [9, 9]],
              ['v', [4, 4]],
            ]),
            description(),
            { writeBytes: failing },
          ),
        (e: unknown) =>
          LrpLensError.is(e, 'runtime-failure') && /ENOSPC/.test(e.message) && /previous mask files are unchanged/.test(e.message),
      );
      assert.deepEqual(readdirSync(work).sort(), ['mask.json', 'mask.safetensors'], `failure in file ${failAt}`);
      assert.deepEqual([readFileSync(paths.safetensors), readFileSync(paths.manifest)], before);
      assert.deepEqual(loadMask(paths.safetensors).mask.get('w')!.keep, first.get('w')!.keep);
    }
  });

  it('refuses corrupt files with a message naming the file and the problem', () => {
    const cases: [string, Uint8Array, RegExp][] = [
      ['short', Uint8Array.from([1, 2, 3]), /shorter than a safetensors header/],
      ['huge header', Uint8Array.from([255, 0, 0, 0, 0, 0, 0, 0, 123]), /header length 255 exceeds the file/],
      ['not json', safetensors({}).map((b, i) => (i === 8 ? 0x7a : b)), /header is not JSON/],
      ['no metadata', safetensors({ w: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)), /not a mask/],
      [
        'float tensor',
        safetensors({ __metadata__: META, w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)),
        /tensor w has dtype F32, not U8/,
      ],
      [
        'offsets out of range',
        safetensors({ __metadata__: META, w: { dtype: 'U8', shape: [2], data_offsets: [0, 9] } }, new Uint8Array(2)),
        /data offsets \[0,9\] outside the 2 data bytes/,
      ],
      [
        'shape vs offsets',
        safetensors({ __metadata__: META, w: { dtype: 'U8', shape: [3], data_offsets: [0, 2] } }, new Uint8Array(2)),
        /shape \[3\] but 2 data bytes/,
      ],
      [
        'bytes vs dims',
        safetensors({ __metadata__: META, w: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
        /holds 1 bytes but dims \[3, 5\] need 2/,
      ],
      ['no bits for a listed tensor', safetensors({ __metadata__: META }), /lists w but no tensor holds its bits/],
    ];
    for (const [what, bytes, pattern] of cases) {
      assert.throws(
        () => decodeMaskSafetensors(bytes, 'x.safetensors'),
        (e: unknown) =>
          LrpLensError.is(e, 'bad-argument') &&
          e.message.startsWith('x.safetensors is not a valid LRP Lens mask file') &&
          pattern.test(e.message),
        what,
      );
    }
    assert.deepEqual(
      decodeMaskSafetensors(
        safetensors({ __metadata__: META, w: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, Uint8Array.from([0xff, 0x7f])),
      ).get('w')!.keep,
      new Uint8Array(15).fill(1),
      'the hand-made valid file reads',
    );
  });

  it('refuses a pair whose files disagree, a broken manifest and a missing file', () => {
    const { paths } = saveMask(join(work, 'mask'), maskOf([['w', [4, 4]]]), description());
    const bytes = readFileSync(paths.safetensors);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(paths.safetensors, bytes);
    assert.throws(() => loadMask(paths.manifest), /mask\.safetensors does not match .*mask\.json .*Recompute the mask/);
    writeFileSync(paths.manifest, '{"format": "lrp-lens-mask"');
    assert.throws(() => loadMask(paths.manifest), /mask\.json is not a valid LRP Lens mask file: it is not JSON/);
    assert.throws(
      () => loadMask(join(work, 'absent')),
      (e: unknown) => LrpLensError.is(e, 'bad-argument') && /absent\.safetensors not found/.test(e.message),
    );
  });
});
