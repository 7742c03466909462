/** Behaviour metrics for correction: uniqueness ratio, word rate, the external scorer, the --metric spec. */
import assert from 'node:assert/strict';
import {
  higherIsBetter,
  meanUniquenessRatio,
  parseBehaviourMetric,
  runScorer,
  uniquenessRatio,
  wordFirstTokenIds,
  wordFrequency,
  wordProbability,
} from '../../src/engine/correction/behaviour';
import { LrpLensError } from '../../src/engine/errors';
import { loadTokenizer, resolveModel } from '../../src/engine/runtime/model';
import { STORIES, requireShared } from '../support/sharedFolder';

const isErr = (reason: 'bad-argument' | 'runtime-failure', re: RegExp) => (e: unknown) => LrpLensError.is(e, reason) && re.test(e.message);
const node = (script: string) => `${JSON.stringify(process.execPath)} -e ${JSON.stringify(script)}`;

describe('behaviour metrics', () => {
  it('Response Uniqueness Ratio: unique ÷ total token ids', () => {
    assert.equal(uniquenessRatio([1, 2, 3, 4]), 1);
    assert.equal(uniquenessRatio([5, 6, 5, 6, 5, 6]), 2 / 6);
    assert.equal(uniquenessRatio([]), 1);
    assert.equal(
      meanUniquenessRatio([
        [1, 2],
        [3, 3],
      ]),
      0.75,
    );
    assert.throws(() => meanUniquenessRatio([]), isErr('bad-argument', /empty/));
  });

  it("word probability is the softmax mass of the words' first tokens; frequency counts whole words", () => {
    const row = Float32Array.from([0, Math.log(3), 0, Math.log(4)]);
    assert.ok(Math.abs(wordProbability(row, [1, 3, 3]) - 7 / 9) < 1e-6, 'duplicates counted once');
    assert.equal(
      wordFrequency('Lily and lily went to see Lilypad. LILY!', ['Lily']),
      3 / 8,
      'three of eight words; Lilypad is another word',
    );
    assert.equal(wordFrequency('', ['Lily']), 0);
  });

  it('parses --metric specs and refuses the rest with the accepted forms', () => {
    assert.deepEqual(parseBehaviourMetric('repetition'), { kind: 'repetition' });
    assert.deepEqual(parseBehaviourMetric('word-rate'), { kind: 'word-rate' });
    assert.deepEqual(parseBehaviourMetric('word-rate: Lily, Tom ,'), { kind: 'word-rate', words: ['Lily', 'Tom'] });
    assert.deepEqual(parseBehaviourMetric('command:python3 score.py --x 1'), { kind: 'command', command: 'python3 score.py --x 1' });
    assert.ok(higherIsBetter({ kind: 'repetition' }) && !higherIsBetter({ kind: 'word-rate' }));
    assert.throws(() => parseBehaviourMetric('word-rate:'), isErr('bad-argument', /no words after "word-rate:"/));
    assert.throws(() => parseBehaviourMetric('command: '), isErr('bad-argument', /no command after "command:"/));
    assert.throws(() => parseBehaviourMetric('toxicity'), isErr('bad-argument', /not a behaviour metric; use repetition, word-rate/));
  });

  it("runs an external scorer: text on stdin, the number on stdout's last line", async () => {
    const count = node(
      "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{console.error('log line');console.log('loading');console.log(s.length/2)})",
    );
    assert.equal(await runScorer(count, 'abcdef'), 3);
  });

  it("reports a scorer's non-zero exit, non-number output and timeout clearly", async () => {
    await assert.rejects(
      runScorer(node("console.error('model missing');process.exit(3)"), 'x'),
      isErr('runtime-failure', /exited with code 3 \(stderr: model missing\)\. It must read the text on stdin and exit 0/),
    );
    await assert.rejects(
      runScorer(node("console.log('high')"), 'x'),
      isErr('bad-argument', /printed "high" on stdout; it must print one number/),
    );
    await assert.rejects(runScorer(node(''), 'x'), isErr('bad-argument', /printed nothing/));
    const t0 = Date.now();
    await assert.rejects(
      runScorer(node('setTimeout(()=>{},60000)'), 'x', { timeoutMs: 300 }),
      isErr('runtime-failure', /did not finish within 0\.3 s and was stopped/),
    );
    assert.ok(Date.now() - t0 < 10_000, 'the timeout stops the command');
  });
});

describe('behaviour metrics on the stories260k tokenizer', function () {
  it('the word " Lily" after "…a little girl named" is token 317', async function () {
    requireShared(this);
    const tok = await loadTokenizer(await resolveModel(STORIES, { offline: true }));
    assert.deepEqual(wordFirstTokenIds(tok, 'Once upon a time, there was a little girl named', ['Lily', ' Lily']), [317]);
    assert.deepEqual(wordFirstTokenIds(tok, 'Once upon a time, there was a little girl named ', ['Lily']).length, 1);
  });
});
