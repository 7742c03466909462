/** The buttons a failure notification offers (src/fixActions.ts): what fixes each reason. */
import { strict as assert } from 'node:assert';
import { fixActions } from '../../src/fixActions';

describe('fix actions', () => {
  it('a run refused for memory: block-wise where the monolithic graph was forced, the limit setting, and run anyway', () => {
    assert.deepEqual(fixActions('out-of-memory', { execution: 'monolithic', canRerun: true }), [
      'Run Block-wise',
      'Set Memory Limit…',
      'Run Anyway',
      'Show Log',
    ]);
    assert.deepEqual(fixActions('out-of-memory', { execution: 'auto', canRerun: true }), ['Set Memory Limit…', 'Run Anyway', 'Show Log']);
    assert.deepEqual(fixActions('insufficient-memory', { execution: 'monolithic', canRerun: true })[0], 'Run Block-wise');
    assert.deepEqual(fixActions('out-of-memory', { execution: 'monolithic' }), ['Set Memory Limit…', 'Show Log'], 'nothing to run again');
  });

  it('other reasons keep their fixes', () => {
    assert.deepEqual(fixActions('engine-exited'), ['Restart Engine', 'Show Log']);
    assert.deepEqual(fixActions('prompt-too-long'), ['Open Settings', 'Show Log']);
    assert.deepEqual(fixActions('model-not-found'), ['Select Model…', 'Show Log']);
    assert.deepEqual(fixActions('bad-argument'), ['Show Log']);
  });
});
