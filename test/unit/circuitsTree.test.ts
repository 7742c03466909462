/** The Circuits sidebar's data builder: circuits and masks found in the workspace, grouped and described. */
import assert from 'node:assert/strict';
import { buildCircuitsTree } from '../../src/views/circuitsTree/treeModel';
import type { FoundFile } from '../../src/views/circuitsTree/treeModel';

const circuit = (name: string, sparsity: number) => ({
  schema: 'lrp-lens/circuit@1',
  task: { name, metric: 'logit_diff' },
  method: 'lrp',
  granularity: 'heads',
  model: 'stories260k',
  circuit: { sparsity, metric: 4.1234, retained: 0.989 },
});
const mask = (method: string, overall: number, metrics: Record<string, unknown> = {}) => ({
  format: 'lrp-lens-mask',
  method,
  sparsity: { overall },
  metrics,
  reference: { name: '/w/data/general.txt' },
});

const files: FoundFile[] = [
  { path: '/w/lrp/circuits/pronoun-lrp-heads/circuit.json', content: circuit('pronoun', 0.3) },
  { path: '/w/lrp/circuits/pronoun-lrp-heads/mask.json', content: mask('circuit:lrp', 0.05) },
  { path: '/w/lrp/circuits/ioi-lrp-neurons/circuit.json', content: circuit('ioi', 0.736) },
  { path: '/w/lrp/masks/prune-50.json', content: mask('lrp', 0.5, { perplexity: 21.87 }) },
  { path: '/w/package.json', content: { name: 'x' } },
  { path: '/w/other/circuit.json', content: { schema: 'something-else' } },
];

describe('Circuits sidebar tree', () => {
  it('groups circuits and masks, sorted, with task, method, sparsity and metric', () => {
    const [circuits, masks] = buildCircuitsTree(files, '/w');
    assert.equal(circuits.label, 'Circuits');
    assert.equal(circuits.description, '2');
    assert.deepEqual(
      circuits.children.map((c) => c.label),
      ['ioi', 'pronoun'],
    );
    const pronoun = circuits.children[1];
    assert.equal(pronoun.kind, 'circuit');
    assert.equal(pronoun.description, 'lrp · heads · 30.0% pruned · logit_diff 4.123 (98.9% kept)');
    assert.equal(pronoun.folder, '/w/lrp/circuits/pronoun-lrp-heads');
    assert.equal(pronoun.maskPath, '/w/lrp/circuits/pronoun-lrp-heads/mask.json');
    assert.match(pronoun.tooltip, /lrp\/circuits\/pronoun-lrp-heads/);
    assert.equal(circuits.children[0].maskPath, undefined, 'a circuit without mask.json has nothing to apply');
    assert.deepEqual(
      masks.children.map((m) => m.label),
      ['prune-50'],
      "a circuit's own mask is not listed again; other JSON is ignored",
    );
    assert.equal(masks.children[0].description, 'general.txt · lrp · 50.0% pruned · perplexity 21.870');
    assert.equal(masks.children[0].maskPath, '/w/lrp/masks/prune-50.json');
  });

  it('says what to do when nothing is found, and ignores malformed files', () => {
    const [circuits, masks] = buildCircuitsTree([
      { path: '/w/circuit.json', content: null },
      { path: '/w/m.json', content: { format: 'lrp-lens-mask' } },
    ]);
    assert.equal(circuits.children.length, 1);
    assert.equal(circuits.children[0].kind, 'empty');
    assert.match(circuits.children[0].label, /Discover Circuit/);
    assert.equal(masks.children[0].kind, 'empty');
  });
});
