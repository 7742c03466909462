/** `lrp-lens task make | task eval` and `lrp-lens circuit`: tasks and circuit discovery from the command line. */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { join, resolve } from 'node:path';
import type { Device } from '../engine/runtime/session';
import { PruningSession } from '../engine/pruning/prune';
import { loadMaskForModel } from '../engine/pruning/maskFile';
import { generateTaskFile } from '../engine/tasks/generators';
import { DEFAULT_TASK_SAMPLES } from '../engine/tasks/taskDefaults';
import type { TaskKind } from '../engine/tasks/generators';
import { readTaskFile, tokenizeTask } from '../engine/tasks/taskFile';
import type { TaskMetric } from '../engine/tasks/taskFile';
import { evaluateAccuracy, evaluateTask } from '../engine/circuits/search';
import type { Granularity, Ranking } from '../engine/circuits/search';
import type { CircuitRecord } from '../engine/circuits/discover';
import type { TaskAccuracy } from '../engine/tasks/metrics';
import { checkOutputPaths, jsonOutput, maskPair } from '../engine/outputPaths';
import { discoverCircuit } from '../engine/circuits/discover';
import { defaultModel, markdownTable, writeJson } from './common';
import { progressDisplay } from './progressDisplay';
import { executionOption, logExecution } from './executionOption';
import type { ExecutionChoice } from '../engine/runtime/execution';

const METRICS: TaskMetric[] = ['logit_diff', 'accuracy', 'prob'];

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`'${v}' is not a positive integer.`);
  return n;
}

async function makeTask(o: { kind: TaskKind; n: number; seed: number; out: string; model?: string }): Promise<void> {
  const written = await generateTaskFile(o);
  console.log(`wrote ${written.samples} ${o.kind} samples to ${written.path}`);
}

async function evalTask(o: {
  model: string;
  mask?: string;
  task: string;
  metric?: TaskMetric;
  device: Device;
  json?: string;
}): Promise<void> {
  checkOutputPaths(jsonOutput(o.json), [
    { flag: '--task', path: o.task },
    ...(o.mask ? [maskPair(o.mask).safetensors, maskPair(o.mask).manifest].map((path) => ({ flag: '--mask', path })) : []),
  ]);
  const loaded = o.mask ? await loadMaskForModel(o.model, o.mask) : undefined;
  const session = await PruningSession.open({
    model: o.model,
    device: o.device,
    selection: { names: loaded ? [...loaded.mask.keys()] : [] },
  });
  try {
    const task = readTaskFile(o.task, session.tokenizer);
    const metric = o.metric ?? task.header.metric;
    const samples = tokenizeTask(task, session.tokenizer, o.task);
    const result = await evaluateTask(session, samples, metric, loaded?.mask);
    const acc = await evaluateAccuracy(session, samples, loaded?.mask);
    if (o.json)
      writeJson(o.json, {
        schema: 'lrp-lens/task-eval@1',
        model: session.folder.ref,
        mask: loaded?.paths.safetensors ?? null,
        task: o.task,
        ...result,
        metric,
        mean: result.mean,
        accuracy: acc,
      });
    if (o.json !== '-') {
      console.log(
        `${task.header.name}: mean ${metric} ${result.mean.toFixed(4)} over ${result.perSample.length} samples${loaded ? ' (masked)' : ''}`,
      );
      console.log(accuracyLine(acc));
    }
  } finally {
    await session.close();
  }
}

/** Accuracy as a user reads it: against chance, with a warning where the model cannot do the task. */
function accuracyLine(a: TaskAccuracy): string {
  const what = a.kind === 'target-above-foil' ? 'target above foil' : 'target is the top prediction';
  const line = `accuracy ${(a.value * 100).toFixed(1)}% (${what}; chance ${(a.chance * 100).toFixed(1)}%)`;
  return a.atChance ? `${line} — the model does not do this task better than chance, so a circuit found in it means little` : line;
}

interface CircuitOptions {
  model: string;
  task: string;
  method: string;
  compare?: string;
  granularity: Granularity;
  ranking: Ranking;
  threshold: number;
  metric?: TaskMetric;
  heldOut: number;
  seed: number;
  general?: string;
  layers?: string;
  topK: number;
  device: Device;
  execution: ExecutionChoice;
  out: string;
  json?: string;
  heldOutTask?: string;
  resamples: number;
}

async function circuit(o: CircuitOptions): Promise<void> {
  const record = await discoverCircuit(
    { ...o, compare: o.compare ? o.compare.split(',') : [] },
    { onProgress: progressDisplay().stage, onExecution: logExecution },
  );
  if (o.json) writeJson(o.json, record);
  if (o.json !== '-') printCircuit(record, resolve(o.out));
}

const retainedCell = (v: number | undefined | null) => (v === undefined || v === null ? '-' : v.toFixed(3));

function printCircuit(r: CircuitRecord, dir: string): void {
  const split = r.task.split;
  console.log(
    split?.by === 'template'
      ? `dense ${r.task.metric} ${r.dense.metric.toFixed(4)} on held-out templates ${split.heldOutTemplates.join(', ')}; discovery on ${r.task.train} samples of the other templates${split.heldOutNames.length ? ` (names ${split.heldOutNames.join(', ')} held out)` : ''}`
      : `dense ${r.task.metric} ${r.dense.metric.toFixed(4)} on ${r.task.heldOut} held-out samples (the task has no templates to hold out)`,
  );
  console.log(
    markdownTable(
      ['method', 'circuit sparsity', 'in-template kept', 'out-of-template kept', 'collect s'],
      r.curves.map((c) => [
        c.method,
        c.chosen ? c.chosen.achieved.toFixed(4) : 'none',
        retainedCell(split?.by === 'template' ? c.chosen?.inTemplateRetained : c.chosen?.retained),
        retainedCell(split?.by === 'template' ? c.chosen?.retained : undefined),
        (c.collectMs / 1000).toFixed(2),
      ]),
    ),
  );
  const f = r.faithfulness;
  if (f?.heldOutTask)
    console.log(
      `${f.heldOutTask.path}: ${(f.heldOutTask.retained * 100).toFixed(1)}% of the dense ${r.task.metric} kept over ${f.heldOutTask.samples} samples`,
    );
  if (r.stability?.resamples)
    console.log(
      `stability over ${r.stability.resamples} resamples of ${r.stability.groups} ${r.stability.groupedBy === 'template' ? 'templates' : 'sample groups'}: ${(r.stability.consistent * 100).toFixed(1)}% of the kept ${r.granularity} are kept by ≥ 90% of them (mean ${(r.stability.meanFrequency * 100).toFixed(1)}%)`,
    );
  console.log(`wrote ${join(dir, 'circuit.json')}, circuit.svg and mask.safetensors + mask.json`);
}

export function registerCircuits(program: Command): void {
  const task = program.command('task').description('task files (*.task.jsonl): generate and evaluate');
  task
    .command('make')
    .description('generate a task file')
    .addOption(new Option('--kind <kind>', 'task kind').choices(['ioi', 'pronoun']).makeOptionMandatory())
    .option('--n <n>', `samples (default ${DEFAULT_TASK_SAMPLES}, or all the generator can draw if fewer)`, positiveInt)
    .option('--seed <s>', 'seed', Number, 0)
    .option('--model <folder|hub-id>', "check targets and foils are single tokens for this model's tokenizer")
    .requiredOption('--out <file>', 'the task file to write (*.task.jsonl)')
    .action(makeTask);
  task
    .command('eval')
    .description('the task metric and accuracy of a model, dense or masked (is the task one the model can do?)')
    .option('--model <folder|hub-id>', 'model folder or hub id', defaultModel())
    .option('--mask <mask>', 'a mask or circuit mask')
    .requiredOption('--task <file>', 'task file')
    .addOption(new Option('--metric <m>', "metric (default: the task header's)").choices(METRICS))
    .addOption(new Option('--device <device>', 'execution provider').choices(['cpu', 'cuda']).default('cpu'))
    .option('--json <out>', "write the result as JSON ('-' for stdout)")
    .action(evalTask);

  program
    .command('circuit')
    .description('discover the sparsest sub-network that still does a task')
    .option('--model <folder|hub-id>', 'model folder or hub id', defaultModel())
    .requiredOption('--task <file>', 'task file (*.task.jsonl)')
    .option('--method <m>', 'lrp | wanda | gradient | activation | magnitude | random', 'lrp')
    .option('--compare <list>', 'other methods whose curves are recorded too, e.g. wanda,gradient')
    .addOption(new Option('--granularity <g>', 'components').choices(['weights', 'neurons', 'heads']).default('weights'))
    .addOption(
      new Option('--ranking <r>', 'one ranking over the model, or per row (neurons: per layer)')
        .choices(['global', 'row'])
        .default('global'),
    )
    .option('--threshold <f>', 'keep at least this fraction of the dense metric', Number, 0.9)
    .addOption(new Option('--metric <m>', "metric (default: the task header's)").choices(METRICS))
    .option('--held-out <f>', 'fraction of templates (and of names) held out from discovery', Number, 0.3)
    .option('--seed <s>', 'split and resampling seed', Number, 0)
    .option('--held-out-task <file>', 'another task file to measure the circuit on (never used to find or choose it)')
    .option('--resamples <n>', 'bootstrap resamples of the training templates for a stable ranking (0: plain mean)', Number, 20)
    .option('--general <file>', 'general text: perplexity of the circuit as a control')
    .option('--layers <spec>', 'which linear layers (kinds and/or block range)')
    .option('--top-k <k>', 'edges in the circuit graph', positiveInt, 50)
    .addOption(new Option('--device <device>', 'execution provider').choices(['cpu', 'cuda']).default('cpu'))
    .addOption(executionOption())
    .requiredOption('--out <dir>', 'output folder (circuit.json, circuit.svg, mask.safetensors + mask.json)')
    .option('--json <out>', "also write circuit.json's content here ('-' for stdout)")
    .action(circuit);
}
