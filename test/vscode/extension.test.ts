/**
 * LRP Lens inside a real extension host: the commands as a user runs them, with the real engine process and
 * stories260k ($LRP_LENS_SHARED/models/stories260k, else ../shared beside the extension). Each command returns
 * its outcome ({ result } or { error }) through executeCommand, which is what these tests read.
 */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AttributionOutcome } from '../../src/container';
import type { AttributionResult } from '../../src/engine/attribution/result';

const EXTENSION_ID = 'lrp-lens.lrp-lens';
const LILY = 'Once upon a time, there was a little girl named';

const extension = () => vscode.extensions.getExtension(EXTENSION_ID)!;
const workspaceDir = () => vscode.workspace.workspaceFolders![0].uri.fsPath;
const sharedModel = () => join(process.env.LRP_LENS_SHARED ?? resolve(extension().extensionPath, '..', 'shared'), 'models', 'stories260k');

async function setting(key: string, value: unknown): Promise<void> {
  await vscode.workspace.getConfiguration('lrpLens').update(key, value, vscode.ConfigurationTarget.Workspace);
}

function writeWorkspaceFile(name: string, content: string | Uint8Array): vscode.Uri {
  const path = join(workspaceDir(), name);
  mkdirSync(resolve(path, '..'), { recursive: true });
  writeFileSync(path, content);
  return vscode.Uri.file(path);
}

async function attributeFile(name: string, content: string | Uint8Array): Promise<AttributionOutcome> {
  const outcome = await vscode.commands.executeCommand<AttributionOutcome | undefined>(
    'lrpLens.attributeFile',
    writeWorkspaceFile(name, content),
  );
  assert.ok(outcome, 'the command returned no outcome');
  return outcome;
}

function resultOf(outcome: AttributionOutcome): AttributionResult {
  if ('error' in outcome) assert.fail(`expected a result, got ${outcome.error.reason}: ${outcome.error.message}`);
  return outcome.result;
}

function errorOf(outcome: AttributionOutcome): { reason: string; message: string; actions?: string[] } {
  if ('result' in outcome) assert.fail(`expected an error, got a result for ${JSON.stringify(outcome.result.prompt)}`);
  return outcome.error;
}

const tabLabels = () => vscode.window.tabGroups.all.flatMap((g) => g.tabs.map((t) => t.label));

/** Resolves true once a tab with `label` is open (tab changes reach the extension host asynchronously). */
function tabOpens(label: string, ms = 5000): Promise<boolean> {
  if (tabLabels().includes(label)) return Promise.resolve(true);
  return new Promise((done) => {
    const timer = setTimeout(() => finish(false), ms);
    const sub = vscode.window.tabGroups.onDidChangeTabs(() => tabLabels().includes(label) && finish(true));
    function finish(found: boolean) {
      clearTimeout(timer);
      sub.dispose();
      done(found);
    }
  });
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

describe('LRP Lens in the extension host', function () {
  before(function () {
    if (!existsSync(sharedModel())) {
      console.log(`skipping: stories260k not found at ${sharedModel()} (set LRP_LENS_SHARED)`);
      this.skip();
    }
    assert.ok(vscode.workspace.workspaceFolders?.length, 'the tests need a workspace folder');
  });

  beforeEach(async () => setting('model', sharedModel()));

  afterEach(async () => {
    for (const key of ['model', 'rule', 'maxTokens', 'outputFolder', 'device', 'execution', 'memoryLimit']) await setting(key, undefined);
  });

  it('registers every command it contributes', async () => {
    await extension().activate();
    const contributed = (extension().packageJSON.contributes.commands as { command: string }[]).map((c) => c.command);
    const registered = new Set(await vscode.commands.getCommands(true));
    assert.ok(contributed.length >= 7, `only ${contributed.length} commands contributed`);
    assert.deepEqual(
      contributed.filter((c) => !registered.has(c)),
      [],
    );
  });

  it('attributes a prompt file end to end: " Lily" on top, relevance conserved, panel open', async () => {
    const r = resultOf(await attributeFile('lily.prompt', LILY + '\n'));
    assert.equal(r.predictions[0].text, ' Lily');
    assert.equal(r.target.text, ' Lily');
    assert.equal(r.prompt, LILY);
    assert.equal(r.tokens.length, 14);
    assert.equal(r.rule, 'attnlrp');
    assert.equal(r.model.device, 'cpu');
    const budget = sum(r.relevance.tokens) + sum(Object.values(r.relevance.absorbed).map(Number));
    assert.ok(
      Math.abs(budget - r.relevance.seed) < 1e-3 * Math.abs(r.relevance.seed),
      `Σ tokens + absorbed = ${budget}, seed ${r.relevance.seed}`,
    );
    assert.ok(await tabOpens('Relevance: lily.prompt'), `no relevance tab; tabs: ${tabLabels().join(', ')}`);
  });

  it('Compute Relevance explains the selection of the active editor', async () => {
    const doc = await vscode.workspace.openTextDocument(writeWorkspaceFile('notes.txt', `Title\n${LILY}\n`));
    const editor = await vscode.window.showTextDocument(doc);
    editor.selection = new vscode.Selection(1, 0, 1, LILY.length);
    const r = resultOf((await vscode.commands.executeCommand<AttributionOutcome>('lrpLens.computeRelevance'))!);
    assert.equal(r.prompt, LILY);
    assert.equal(r.target.text, ' Lily');
  });

  it('lrpLens.model: the folder set is the model run, and a missing one is an error naming it', async () => {
    assert.match(resultOf(await attributeFile('lily.prompt', LILY)).model.ref, /stories260k/);
    await setting('model', join(workspaceDir(), 'no-such-model'));
    const e = errorOf(await attributeFile('lily.prompt', LILY));
    assert.equal(e.reason, 'model-not-found');
    assert.match(e.message, /no-such-model/);
    assert.match(e.message, /transformers\.js layout/);
  });

  it('lrpLens.rule: gradxinput gives gradient × input, different from AttnLRP', async () => {
    const attn = resultOf(await attributeFile('lily.prompt', LILY));
    await setting('rule', 'gradxinput');
    const gxi = resultOf(await attributeFile('lily.prompt', LILY));
    assert.equal(gxi.rule, 'gradxinput');
    assert.equal(gxi.target.text, ' Lily');
    const diff = Math.max(...gxi.relevance.tokens.map((v, i) => Math.abs(v - attn.relevance.tokens[i])));
    assert.ok(diff > 1e-3, `token relevance identical under both rules (max difference ${diff})`);
  });

  it('lrpLens.maxTokens: a longer prompt is refused, naming the count, the limit and the setting', async () => {
    await setting('maxTokens', 5);
    const e = errorOf(await attributeFile('lily.prompt', LILY));
    assert.equal(e.reason, 'prompt-too-long');
    assert.match(e.message, /14 tokens, more than the limit of 5/);
    assert.match(e.message, /lrpLens\.maxTokens/);
    await setting('maxTokens', 14);
    assert.equal(resultOf(await attributeFile('lily.prompt', LILY)).tokens.length, 14);
  });

  it('lrpLens.memoryLimit: a run estimated above it is refused before it runs, with the fixes; lrpLens.execution forces either', async () => {
    await setting('execution', 'monolithic');
    await setting('memoryLimit', '20MB');
    const e = errorOf(await attributeFile('lily.prompt', LILY));
    assert.equal(e.reason, 'insufficient-memory');
    assert.match(e.message, /needs about \d+ MB at peak .* more than the memory limit/);
    assert.deepEqual(e.actions, ['Run Block-wise', 'Set Memory Limit…', 'Run Anyway', 'Show Log']);
    await setting('memoryLimit', undefined);
    await setting('execution', 'blockwise');
    assert.equal(resultOf(await attributeFile('lily.prompt', LILY)).execution?.kind, 'blockwise');
  });

  it('lrpLens.outputFolder: exports are written there', async () => {
    await setting('outputFolder', 'out/relevance');
    const uri = writeWorkspaceFile('lily.prompt', LILY);
    resultOf((await vscode.commands.executeCommand<AttributionOutcome>('lrpLens.attributeFile', uri))!);
    const json = await vscode.commands.executeCommand<string>('lrpLens.exportRelevance', 'json', uri);
    const html = await vscode.commands.executeCommand<string>('lrpLens.exportRelevance', 'html', uri);
    assert.equal(json, join(workspaceDir(), 'out', 'relevance', 'lily.relevance.json'));
    assert.equal(html, join(workspaceDir(), 'out', 'relevance', 'lily.relevance.html'));
    const exported = JSON.parse(readFileSync(json, 'utf8')) as AttributionResult;
    assert.equal(exported.schema, 'lrp-lens/attribution@1');
    assert.equal(exported.target.text, ' Lily');
    assert.match(readFileSync(html, 'utf8'), /Lily/);
  });

  it('lrpLens.device: cuda runs on the GPU, or on the CPU with a warning saying why', async () => {
    await setting('device', 'cuda');
    const r = resultOf(await attributeFile('lily.prompt', LILY));
    if (r.model.device === 'cpu')
      assert.ok(
        r.warnings.some((w) => /cuda/i.test(w)),
        `no warning about CUDA: ${JSON.stringify(r.warnings)}`,
      );
    else assert.equal(r.model.device, 'cuda');
  });

  it('an empty prompt file is refused with what to do', async () => {
    const e = errorOf(await attributeFile('empty.prompt', ''));
    assert.equal(e.reason, 'bad-argument');
    assert.match(e.message, /empty\.prompt holds no prompt text; write the prompt below the header/);
  });

  it('an empty plain-text file is refused with what to do', async () => {
    const e = errorOf(await attributeFile('empty.txt', ''));
    assert.equal(e.reason, 'bad-argument');
    assert.match(e.message, /prompt is empty; give at least one token of text/);
  });

  it('a binary file is refused as not being text', async () => {
    const e = errorOf(await attributeFile('image.prompt', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x0d, 0x0a, 0xff])));
    assert.equal(e.reason, 'bad-argument');
    assert.match(e.message, /image\.prompt is not a text file: it holds binary data/);
    assert.match(e.message, /must be UTF-8 text/);
  });

  it('a model folder without tokenizer.json is refused, naming the file and the fix', async () => {
    const dir = join(workspaceDir(), 'no-tokenizer');
    mkdirSync(join(dir, 'onnx'), { recursive: true });
    writeFileSync(join(dir, 'config.json'), readFileSync(join(sharedModel(), 'config.json')));
    if (!existsSync(join(dir, 'onnx', 'model.onnx')))
      symlinkSync(join(sharedModel(), 'onnx', 'model.onnx'), join(dir, 'onnx', 'model.onnx'));
    await setting('model', dir);
    const e = errorOf(await attributeFile('lily.prompt', LILY));
    assert.equal(e.reason, 'model-not-found');
    assert.match(e.message, /no tokenizer\.json/);
    assert.match(e.message, /[Cc]opy|[Cc]hoose/);
  });

  it('contributes the Circuits view and registers the circuit commands', async () => {
    await extension().activate();
    const pkg = extension().packageJSON.contributes;
    assert.deepEqual(
      pkg.views.lrpLens.map((v: { id: string }) => v.id),
      ['lrpLens.circuits'],
    );
    const registered = new Set(await vscode.commands.getCommands(true));
    for (const id of [
      'lrpLens.discoverCircuit',
      'lrpLens.newTaskFile',
      'lrpLens.circuits.open',
      'lrpLens.circuits.apply',
      'lrpLens.circuits.delete',
      'lrpLens.circuits.reveal',
    ])
      assert.ok(registered.has(id), `${id} registered`);
    await vscode.commands.executeCommand('workbench.view.extension.lrpLens');
  });

  it('New Task File and Discover Circuit (heads, options given) write circuit.json and open the circuit panel', async () => {
    const task = await vscode.commands.executeCommand<string>('lrpLens.newTaskFile', {
      kind: 'pronoun',
      n: 120,
      seed: 1,
      out: 'tasks/pronoun.task.jsonl',
      open: false,
    });
    assert.equal(task, join(workspaceDir(), 'tasks', 'pronoun.task.jsonl'));
    const outcome = await vscode.commands.executeCommand<{
      record?: { circuit: { retained: number }; granularity: string };
      dir?: string;
      error?: { message: string };
    }>('lrpLens.discoverCircuit', vscode.Uri.file(task), {
      method: 'lrp',
      granularity: 'heads',
      ranking: 'global',
      threshold: 0.9,
      compare: ['wanda'],
    });
    assert.ok(outcome?.record, `no record: ${outcome?.error?.message}`);
    assert.equal(outcome.dir, join(workspaceDir(), 'lrp', 'circuits', 'pronoun-lrp-heads'));
    const written = JSON.parse(readFileSync(join(outcome.dir, 'circuit.json'), 'utf8')) as { schema: string; granularity: string };
    assert.equal(written.schema, 'lrp-lens/circuit@1');
    assert.equal(written.granularity, 'heads');
    assert.ok(outcome.record.circuit.retained >= 0.9);
    assert.ok(existsSync(join(outcome.dir, 'mask.json')));
    assert.ok(await tabOpens('Circuit: pronoun'), `no circuit tab; tabs: ${tabLabels().join(', ')}`);
  });

  it('Discover Circuit on a malformed task file reports the line', async () => {
    const uri = writeWorkspaceFile('bad.task.jsonl', '{"task": {"name": "t", "metric": "logit_diff"}}\n{"prompt": "a",\n');
    const outcome = await vscode.commands.executeCommand<{ error?: { reason: string; message: string } }>('lrpLens.discoverCircuit', uri, {
      granularity: 'heads',
    });
    assert.equal(outcome?.error?.reason, 'bad-argument');
    assert.match(outcome!.error!.message, /bad\.task\.jsonl:2/);
  });

  it('Restart Engine stops the engine and the next attribution starts a fresh one', async () => {
    resultOf(await attributeFile('lily.prompt', LILY));
    await vscode.commands.executeCommand('lrpLens.restartEngine');
    const r = resultOf(await attributeFile('lily.prompt', LILY));
    assert.equal(r.predictions[0].text, ' Lily');
    assert.ok(r.timing.loadMs > 0, 'a fresh engine loads the model again');
  });
  it('Prune Model with arguments writes a mask and its report and opens the pruning panel; Apply Mask makes attributions use the pruned model', async () => {
    const story = readFileSync(join(sharedModel(), '..', '..', 'data', 'tinystories-sample.txt'), 'utf8');
    writeWorkspaceFile('reference.txt', story.slice(0, 3000));
    writeWorkspaceFile('eval.txt', story.slice(-2000));
    const outcome = await vscode.commands.executeCommand<{
      report?: { schema: string; points: { mask: string; perplexity: number }[]; dense: { perplexity: number } };
      reportPath?: string;
      error?: { message: string };
    }>('lrpLens.pruneModel', {
      method: 'lrp',
      sparsity: 0.5,
      reference: 'reference.txt',
      eval: 'eval.txt',
      samples: 4,
      seqLen: 64,
      name: 'host-lrp-50',
    });
    assert.ok(outcome?.report, `no report: ${outcome?.error?.message}`);
    assert.equal(outcome.report.schema, 'lrp-lens/prune@1');
    const mask = outcome.report.points[0].mask;
    assert.equal(mask, join(workspaceDir(), 'lrp', 'masks', 'host-lrp-50.safetensors'));
    assert.ok(existsSync(mask) && existsSync(outcome.reportPath!));
    assert.ok(outcome.report.points[0].perplexity > outcome.report.dense.perplexity);
    assert.ok(
      (await tabOpens('Pruning: lrp:abs-tokens at 50%')) || (await tabOpens('Pruning: lrp at 50%')),
      `no pruning tab; tabs: ${tabLabels().join(', ')}`,
    );
    const dense = resultOf(await attributeFile('lily.prompt', LILY));
    const applied = await vscode.commands.executeCommand<{ applied?: { dir: string; sparsity: number } }>(
      'lrpLens.applyMask',
      vscode.Uri.file(mask),
    );
    assert.ok(applied?.applied && Math.abs(applied.applied.sparsity - 0.5) < 0.01);
    const pruned = resultOf(await attributeFile('lily.prompt', LILY));
    assert.equal(pruned.model.ref, applied.applied.dir);
    assert.notDeepEqual(pruned.relevance.tokens, dense.relevance.tokens);
    await vscode.commands.executeCommand('lrpLens.clearMask');
    assert.equal(resultOf(await attributeFile('lily.prompt', LILY)).model.ref, dense.model.ref);
  });

  it('Prune Model refuses a missing reference, naming the problem and the fix', async () => {
    const outcome = await vscode.commands.executeCommand<{ error?: { reason: string; message: string } }>('lrpLens.pruneModel', {
      method: 'wanda',
      sparsity: 0.5,
    });
    assert.equal(outcome?.error?.reason, 'bad-argument');
    assert.match(outcome!.error!.message, /needs a reference file/);
  });

  it('Correct Behaviour with arguments writes the chosen mask and opens the correction panel', async () => {
    const girls = ['Once upon a time, there was a little girl named', 'One day, a little girl named', 'There was a little girl named'];
    writeWorkspaceFile('lily.prompts.jsonl', girls.map((prompt) => JSON.stringify({ prompt, target: ' Lily' })).join('\n'));
    writeWorkspaceFile(
      'general.txt',
      readFileSync(join(sharedModel(), '..', '..', 'data', 'tinystories-sample.txt'), 'utf8').slice(0, 3000),
    );
    const outcome = await vscode.commands.executeCommand<{
      report?: { schema: string; chosen: { count: number; mask: string } };
      error?: { message: string };
    }>('lrpLens.correctBehaviour', {
      undesired: 'lily.prompts.jsonl',
      general: 'general.txt',
      metric: 'word-rate',
      counts: [2, 4],
      layers: 'gate,up',
      samples: 4,
      seqLen: 64,
      steps: 8,
    });
    assert.ok(outcome?.report, `no report: ${outcome?.error?.message}`);
    assert.equal(outcome.report.schema, 'lrp-lens/correct@1');
    assert.ok(existsSync(outcome.report.chosen.mask));
    assert.ok(
      await tabOpens(`Correction: ${outcome.report.chosen.count} neurons pruned (lrp)`),
      `no correction tab; tabs: ${tabLabels().join(', ')}`,
    );
  });
});
