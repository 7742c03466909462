/**
 * The engine process and its client, end to end: real child processes running the bundled dist/worker.js on
 * stories260k. `npm test` builds first; running mocha alone needs `node esbuild.mjs` (or `npm run build`)
 * beforehand, otherwise these tests fail on the missing dist/worker.js.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EngineClient, EngineError } from '../../src/worker/client';
import type { ExitInfo } from '../../src/worker/client';
import type { AttributeParams, CircuitParams, Method, ProgressNotification } from '../../src/worker/protocol';
import { STORIES, SHARED, requireShared } from '../support/sharedFolder';

const WORKER = resolve(__dirname, '..', '..', 'dist', 'worker.js');
const PROMPT = 'Once upon a time, there was a little girl named';

function params(overrides: Partial<AttributeParams> = {}): AttributeParams {
  return { model: STORIES, rule: 'attnlrp', device: 'cpu', offline: true, request: { prompt: PROMPT, target: ' Lily' }, ...overrides };
}

/** A circuit request on `model` that fails while loading it (the task file is never reached). */
function circuitParams(model: string): CircuitParams {
  return { model, task: 'none.task.jsonl', method: 'lrp', granularity: 'heads', ranking: 'global', threshold: 0.9, out: tmpdir() };
}

function progressRecorder(): { messages: string[]; onProgress: (p: ProgressNotification['params']) => void } {
  const messages: string[] = [];
  return { messages, onProgress: (p) => messages.push(p.message) };
}

async function rejection(promise: Promise<unknown>): Promise<EngineError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof EngineError, `expected an EngineError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the request to reject');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function exited(client: EngineClient): Promise<ExitInfo> {
  return new Promise((done) => {
    const off = client.onDidExit((info) => {
      off();
      done(info);
    });
  });
}

describe('engine worker process', function () {
  let client: EngineClient;
  const logs: string[] = [];

  before(function () {
    requireShared(this);
    assert.ok(existsSync(WORKER), `${WORKER} is missing: run \`node esbuild.mjs\` before mocha`);
  });

  beforeEach(() => {
    logs.length = 0;
    client = new EngineClient({ workerPath: WORKER, log: (m) => logs.push(m) });
  });

  afterEach(() => client.dispose());

  it('starts lazily and answers ping with its pid', async () => {
    assert.equal(client.pid, undefined);
    const { pid } = await client.request('ping', {});
    assert.equal(pid, client.pid);
    assert.notEqual(pid, process.pid);
  });

  it('attributes a prompt, reporting progress in order and logging the run', async () => {
    const progress = progressRecorder();
    const r = await client.request('attribute', params(), { onProgress: progress.onProgress });
    assert.equal(r.target.text, ' Lily');
    assert.equal(r.relevance.tokens.length, r.tokens.length);
    assert.ok(r.tokens.length > 5);
    const stages = ['loading model', 'compiling relevance graph', 'running', 'done'];
    assert.deepEqual(
      progress.messages.map((m) => stages.find((s) => m.startsWith(s))),
      stages,
      progress.messages.join(' | '),
    );
    assert.ok(
      logs.some((l) => l.includes('cpu') && /run \d+ ms/.test(l)),
      logs.join('\n'),
    );
  });

  it('reuses the warm engine for the same settings and reloads when they change', async () => {
    await client.request('attribute', params());
    const pid = client.pid;
    const warm = progressRecorder();
    const again = await client.request('attribute', params({ request: { prompt: 'Once upon a time' } }), { onProgress: warm.onProgress });
    assert.equal(client.pid, pid);
    assert.ok(!warm.messages.some((m) => m.startsWith('loading model')), warm.messages.join(' | '));
    assert.ok(
      warm.messages.some((m) => m.includes('cached')),
      warm.messages.join(' | '),
    );
    assert.equal(again.prompt, 'Once upon a time');
    const other = progressRecorder();
    const r = await client.request('attribute', params({ rule: 'gradxinput' }), { onProgress: other.onProgress });
    assert.equal(r.rule, 'gradxinput');
    assert.ok(other.messages[0].startsWith('loading model'), other.messages.join(' | '));
  });

  it('answers inspect with a model report', async () => {
    const report = await client.request('inspect', { model: STORIES, offline: true });
    assert.equal(report.schema, 'lrp-lens/inspect@1');
    assert.ok(report.attribution.supported);
  });

  it('passes engine errors across with their reason', async () => {
    const missing = await rejection(client.request('attribute', params({ model: join(SHARED, 'models', 'no-such-model') })));
    assert.equal(missing.reason, 'model-not-found');
    const long = await rejection(client.request('attribute', params({ maxTokens: 4 })));
    assert.equal(long.reason, 'prompt-too-long');
    assert.match(long.message, /\b4\b/);
    assert.match(long.message, /lrpLens\.maxTokens/);
  });

  it('answers unknown methods with bad-argument and other failures with internal, without a stack', async () => {
    const unknown = await rejection(client.request('nope' as Method, {} as never));
    assert.equal(unknown.reason, 'bad-argument');
    assert.match(unknown.message, /nope/);
    const broken = await rejection(client.request('attribute', params({ request: undefined as never })));
    assert.equal(broken.reason, 'internal');
    assert.doesNotMatch(broken.message, /\n\s+at /);
    assert.deepEqual(await client.request('ping', {}), { pid: client.pid }, 'the engine survives a failed request');
  });

  it('cancels by killing the engine, quickly, and the next request starts a fresh one', async () => {
    const abort = new AbortController();
    let pid = 0;
    let t0 = 0;
    const abortMidRequest = () => {
      pid = client.pid!;
      t0 = performance.now();
      abort.abort();
    };
    const request = client.request('attribute', params(), { onProgress: abortMidRequest, signal: abort.signal });
    const err = await rejection(request);
    assert.equal(err.reason, 'cancelled');
    assert.ok(performance.now() - t0 < 2000);
    assert.ok(pid > 0);
    await new Promise((done) => setTimeout(done, 200));
    assert.ok(!isAlive(pid), 'the cancelled engine process is gone');
    const r = await client.request('attribute', params());
    assert.equal(r.target.text, ' Lily');
    assert.notEqual(client.pid, pid);
  });

  it('rejects an already-aborted request without starting the engine', async () => {
    const err = await rejection(client.request('ping', {}, { signal: AbortSignal.abort() }));
    assert.equal(err.reason, 'cancelled');
    assert.equal(client.pid, undefined);
  });

  it('rejects pending requests with engine-exited when the process dies, and works after restart()', async () => {
    const exit = exited(client);
    let killed = false;
    const killEngine = () => {
      if (!killed) process.kill(client.pid!, 'SIGKILL');
      killed = true;
    };
    const request = client.request('attribute', params(), { onProgress: killEngine });
    const err = await rejection(request);
    assert.equal(err.reason, 'engine-exited');
    assert.match(err.message, /SIGKILL/);
    assert.match(err.message, /LRP Lens: Restart Engine/);
    assert.deepEqual(await exit, { code: null, signal: 'SIGKILL', unexpected: true, pending: 1 });
    client.restart();
    const r = await client.request('attribute', params());
    assert.equal(r.target.text, ' Lily');
  });

  it('shutdown resolves once the engine process has exited, and again at once when called twice', async () => {
    const { pid } = await client.request('ping', {});
    const first = client.shutdown();
    assert.equal(client.shutdown(), first, 'the same shutdown, not a second one');
    await first;
    assert.equal(isAlive(pid), false, `engine ${pid} still running after shutdown resolved`);
    assert.equal((await rejection(client.request('ping', {}))).reason, 'internal');
  });

  it('an offline request does not make later requests offline', async () => {
    const hubOnline = new EngineClient({
      workerPath: WORKER,
      env: { ...process.env, LRP_LENS_CACHE: mkdtempSync(join(tmpdir(), 'lrp-offline-')), LRP_LENS_OFFLINE: '', HF_HUB_OFFLINE: '' },
    });
    try {
      const missing = 'lrp-lens-test/not-cached';
      const offline = await rejection(hubOnline.request('circuit', { ...circuitParams(missing), offline: true }));
      assert.match(offline.message, /downloads are disabled/);
      const later = await rejection(hubOnline.request('circuit', circuitParams(missing)));
      assert.ok(['model-not-found', 'network-failure'].includes(later.reason), later.reason);
      assert.doesNotMatch(later.message, /downloads are disabled/, 'the later request tried to download');
      assert.match(later.message, /Could not reach|There is no model|HTTP \d+/);
    } finally {
      await hubOnline.shutdown();
    }
  });

  it('rejects pending requests on dispose and refuses new ones', async () => {
    const request = client.request('attribute', params());
    client.dispose();
    assert.equal((await rejection(request)).reason, 'cancelled');
    assert.equal((await rejection(client.request('ping', {}))).reason, 'internal');
  });
});
