/** Standard-op rewrites against onnxruntime running the original op. */
import assert from 'node:assert/strict';
import { emptyGraph, GraphBuilder, valueInfo } from '../../src/engine/onnx/builder';
import type { Graph } from '../../src/engine/onnx/graph';
import { encodeModel } from '../../src/engine/onnx/io';
import { canonicalize } from '../../src/engine/relevance/canonicalize';
import { Session, floatTensor, tensorNumbers } from '../../src/engine/runtime/session';

async function run(g: Graph, x: number[], dims: number[]): Promise<Record<string, number[]>> {
  const s = await Session.create(encodeModel(g));
  try {
    const out = await s.run({ x: floatTensor('float32', x, dims) });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, tensorNumbers(v)]));
  } finally {
    await s.release();
  }
}

describe('standard rewrites', () => {
  it('LayerNormalization keeps its optional Mean and InvStdDev outputs', async () => {
    const build = () => {
      const g = emptyGraph(17);
      const b = new GraphBuilder(g, 't');
      g.inputs.push(valueInfo('x', 'float32', [2, 3, 4]));
      const gamma = b.initializer('gamma', 'float32', [4], [1, 0.5, -2, 1.5]);
      const beta = b.initializer('beta', 'float32', [4], [0.1, 0, -0.3, 0.2]);
      g.nodes.push({
        name: 'ln',
        opType: 'LayerNormalization',
        domain: '',
        inputs: ['x', gamma, beta],
        outputs: ['y', 'mean', 'inv'],
        attributes: [],
      });
      g.outputs.push(valueInfo('y', 'float32', [2, 3, 4]), valueInfo('mean', 'float32', [2, 3, 1]), valueInfo('inv', 'float32', [2, 3, 1]));
      return g;
    };
    const x = Array.from({ length: 24 }, (_, i) => Math.sin(i * 1.7) * 3 + i / 10);
    const ref = await run(build(), x, [2, 3, 4]);
    const canonical = canonicalize(build()).graph;
    assert.ok(!canonical.nodes.some((n) => n.opType === 'LayerNormalization'));
    const got = await run(canonical, x, [2, 3, 4]);
    for (const k of ['y', 'mean', 'inv'])
      got[k].forEach((v, i) =>
        assert.ok(Math.abs(v - ref[k][i]) <= 1e-5 * Math.max(1, Math.abs(ref[k][i])), `${k}[${i}] ${v} vs ${ref[k][i]}`),
      );
  });
});
