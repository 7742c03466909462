/** Output paths: a command's outputs never collide with each other or with its inputs. */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { LrpLensError } from '../../src/engine/errors';
import { checkOutputPaths, circuitOutputs, jsonOutput, maskOutputs, maskPair } from '../../src/engine/outputPaths';

const isBad = (re: RegExp) => (e: unknown) => LrpLensError.is(e, 'bad-argument') && re.test(e.message);

describe('output paths', () => {
  it('a mask path names its pair, whichever of the three forms is given', () => {
    for (const p of ['out/fix', 'out/fix.safetensors', 'out/fix.json'])
      assert.deepEqual(maskPair(p), { safetensors: resolve('out/fix.safetensors'), manifest: resolve('out/fix.json') });
  });

  it('refuses a report written over the mask manifest (the issue: --out fix.safetensors --json fix.json)', () => {
    assert.throws(
      () => checkOutputPaths([...maskOutputs('--out', 'fix.safetensors'), ...jsonOutput('fix.json')]),
      isBad(/^--json and --out \(mask manifest\) would both write .*fix\.json; the second would overwrite the first/),
    );
    assert.throws(() => checkOutputPaths(circuitOutputs('c', 'c/../c/circuit.svg')), isBad(/--json and --out \(circuit\.svg\)/));
  });

  it('refuses an output that is an input, and accepts distinct paths and stdout', () => {
    assert.throws(
      () => checkOutputPaths(jsonOutput('m.json'), [{ flag: '--mask', path: 'm.json' }]),
      isBad(/--json would write .*m\.json, which is the --mask input/),
    );
    assert.doesNotThrow(() => checkOutputPaths([...maskOutputs('--out', 'fix'), ...jsonOutput('report.json')], ['u.txt', undefined]));
    assert.doesNotThrow(() => checkOutputPaths([...circuitOutputs('c', '-')], [{ flag: '--task', path: 'c.task.jsonl' }]));
  });
});
