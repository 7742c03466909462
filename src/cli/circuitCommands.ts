/** `lrp-lens task make | task eval` and `lrp-lens circuit`: tasks and circuit discovery from the command line. */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { join, resolve } from 'node:path';
import type { Device } from '../engine/runtime/session';
import { PruningSession } from '../engine/pruning/prune';
import { loadMaskForModel } from '../engine/pruning/maskFile';
import { generateTaskFile } from '../engine/tasks/generators';
import type { TaskKind } from '../engine/tasks/generators';
import { readTaskFile, tokenizeTask } from '../engine/tasks/taskFile';
import type { TaskMetric } from '../engine/tasks/taskFile';
import { evaluateTask } from '../engine/circuits/search';
import type { Granularity, MethodCurve, Ranking } from '../engine/circuits/search';
import { discoverCircuit } from '../engine/circuits/discover';
import { defaultModel, markdownTable, writeJson } from './common';
import { progressDisplay } from './progressDisplay';

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
  const loaded = o.mask ? await loadMaskForModel(o.model, o.mask) : undefined;
  const session = await PruningSession.open({
    model: o.model,
    device: o.device,
    selection: { names: loaded ? [...loaded.mask.keys()] : [] },
  });
  try {
    const task = readTaskFile(o.task, session.tokenizer);
    const metric = o.metric ?? task.header.metric;
    const result = await evaluateTask(session, tokenizeTask(task, session.tokenizer, o.task), metric, loaded?.mask);
    if (o.json)
      writeJson(o.json, {
        schema: 'lrp-lens/task-eval@1',
        model: session.folder.ref,
        mask: loaded?.paths.safetensors ?? null,
        task: o.task,
        ...result,
        metric,
        mean: result.mean,
      });
    if (o.json !== '-')
      console.log(
        `${task.header.name}: mean ${metric} ${result.mean.toFixed(4)} over ${result.perSample.length} samples${loaded ? ' (masked)' : ''}`,
      );
  } finally {
    await session.close();
  }
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
  out: string;
  json?: string;
}

async function circuit(o: CircuitOptions): Promise<void> {
  const record = await discoverCircuit({ ...o, compare: o.compare ? o.compare.split(',') : [] }, { onProgress: progressDisplay().stage });
  if (o.json) writeJson(o.json, record);
  if (o.json !== '-') printCircuit(record.dense.metric, record.curves, resolve(o.out));
}

function printCircuit(dense: number, curves: MethodCurve[], dir: string): void {
  console.log(`dense metric ${dense.toFixed(4)}`);
  console.log(
    markdownTable(
      ['method', 'circuit sparsity', 'retained', 'collect s'],
      curves.map((c) => [
        c.method,
        c.chosen ? c.chosen.achieved.toFixed(4) : 'none',
        c.chosen ? c.chosen.retained.toFixed(3) : '-',
        (c.collectMs / 1000).toFixed(2),
      ]),
    ),
  );
  console.log(`wrote ${join(dir, 'circuit.json')}, circuit.svg and mask.safetensors + mask.json`);
}

export function registerCircuits(program: Command): void {
  const task = program.command('task').description('task files (*.task.jsonl): generate and evaluate');
  task
    .command('make')
    .description('generate a task file')
    .addOption(new Option('--kind <kind>', 'task kind').choices(['ioi', 'pronoun']).makeOptionMandatory())
    .option('--n <n>', 'samples', positiveInt, 100)
    .option('--seed <s>', 'seed', Number, 0)
    .option('--model <folder|hub-id>', "check targets and foils are single tokens for this model's tokenizer")
    .requiredOption('--out <file>', 'the task file to write (*.task.jsonl)')
    .action(makeTask);
  task
    .command('eval')
    .description('the task metric of a model, dense or masked')
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
    .option('--held-out <f>', 'fraction of samples held out for evaluation', Number, 0.3)
    .option('--seed <s>', 'split seed', Number, 0)
    .option('--general <file>', 'general text: perplexity of the circuit as a control')
    .option('--layers <spec>', 'which linear layers (kinds and/or block range)')
    .option('--top-k <k>', 'edges in the circuit graph', positiveInt, 50)
    .addOption(new Option('--device <device>', 'execution provider').choices(['cpu', 'cuda']).default('cpu'))
    .requiredOption('--out <dir>', 'output folder (circuit.json, circuit.svg, mask.safetensors + mask.json)')
    .option('--json <out>', "also write circuit.json's content here ('-' for stdout)")
    .action(circuit);
}
