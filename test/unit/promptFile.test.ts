/** Prompt files: header, offsets, JSONL samples, and the errors for bad input. */
import assert from 'node:assert/strict';
import { parsePromptFile, parsePromptsJsonl, isPromptFile, isPromptsJsonl } from '../../src/engine/attribution/promptFile';
import { LrpLensError } from '../../src/engine/errors';

const isBad = (re: RegExp) => (e: unknown) => LrpLensError.is(e, 'bad-argument') && re.test(e.message);

describe('prompt files', () => {
  it('recognises the file names', () => {
    assert.ok(isPromptFile('a/story.prompt') && isPromptFile('x.prompt.txt') && !isPromptFile('x.txt'));
    assert.ok(isPromptsJsonl('set.prompts.jsonl') && !isPromptsJsonl('set.jsonl'));
  });

  it('a plain file is the prompt, without the trailing newline', () => {
    const p = parsePromptFile('Once upon a time\n');
    assert.deepEqual(p, { request: { prompt: 'Once upon a time' }, promptOffset: 0 });
  });

  it('reads target, foil, continuation and ids from the header, keeping leading spaces of JSON strings', () => {
    const text =
      '---\ntarget: " Lily"\nfoil: " Sue"\n# a comment\ncontinuation: , who\n---\nOnce upon a time, there was a little girl named\n';
    const p = parsePromptFile(text);
    assert.equal(p.request.target, ' Lily');
    assert.equal(p.request.foil, ' Sue');
    assert.equal(p.request.continuation, ', who');
    assert.equal(p.request.prompt, 'Once upon a time, there was a little girl named');
    assert.equal(text.slice(p.promptOffset, p.promptOffset + 4), 'Once');
    assert.equal(parsePromptFile('---\ntarget-id: 317\nfoil-id: 12\n---\nhi').request.targetId, 317);
  });

  it('refuses an empty prompt, an unknown header key, a bad id and binary content with the line and fix', () => {
    assert.throws(() => parsePromptFile('\n'), isBad(/no prompt text/));
    assert.throws(() => parsePromptFile('---\ntarget: " Lily"\n---\n'), isBad(/no prompt text/));
    assert.throws(() => parsePromptFile('---\ntraget: x\n---\nhi', 'a.prompt'), isBad(/a\.prompt, line 2: expected one of target/));
    assert.throws(() => parsePromptFile('---\ntarget-id: -3\n---\nhi'), isBad(/target-id must be a token id/));
    assert.throws(() => parsePromptFile('---\ntarget: "unclosed\n---\nhi'), isBad(/not a valid JSON string/));
    assert.throws(() => parsePromptFile('PK\u0003\u0004\u0000\u0000binary', 'x.prompt'), isBad(/x\.prompt is not a text file/));
  });

  it('reads JSONL samples with their lines, and names the bad line', () => {
    const s = parsePromptsJsonl('{"prompt":"A boy named Tom.","target":" he","foil":" she"}\n\n{"prompt":"The cat"}\n');
    assert.deepEqual(s, [
      { prompt: 'A boy named Tom.', target: ' he', foil: ' she', line: 1 },
      { prompt: 'The cat', target: undefined, foil: undefined, line: 3 },
    ]);
    assert.throws(
      () => parsePromptsJsonl('{"prompt":"ok"}\n{oops}\n', 'set.prompts.jsonl'),
      isBad(/set\.prompts\.jsonl, line 2: not valid JSON/),
    );
    assert.throws(() => parsePromptsJsonl('{"target":" he"}'), isBad(/line 1: each line needs a non-empty "prompt"/));
    assert.throws(() => parsePromptsJsonl('{"prompt":"x","target":3}'), isBad(/"target" must be a string/));
    assert.throws(() => parsePromptsJsonl('\n\n'), isBad(/has no samples/));
  });
});
