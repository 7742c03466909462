#!/usr/bin/env node
/** `lrp-lens`: attribute, compile, inspect, prune, discover circuits and correct from the command line (the engine, in-process). */
import { Command, Option } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { LrpLensError } from '../engine/errors';
import { AttributionEngine } from '../engine/attribution/attribute';
import type { AttributeRequest } from '../engine/attribution/attribute';
import { resolveModel } from '../engine/runtime/model';
import { compileGraph } from '../engine/runtime/compile';
import { readModel, writeModelReferencingSource } from '../engine/onnx/io';
import type { RelevanceMode } from '../engine/relevance/mode';
import type { Device } from '../engine/runtime/session';
import { renderSummary } from './heatmap';
import { inspectModel } from '../engine/runtime/inspect';
import type { ModelReport } from '../engine/runtime/inspect';
import { executionOption, logExecution } from './executionOption';
import type { ExecutionChoice } from '../engine/runtime/execution';
import { registerPruning } from './pruneCommands';
import { registerCircuits } from './circuitCommands';
import { registerCorrection } from './correctCommands';
import { defaultModel, idsArg, intArg, writeJson } from './common';
import { peakRssMB } from './peakRss';
import { registerModels } from './modelsCommand';
import { addRunOptions } from './runOptions';

const RULES: RelevanceMode[] = ['attnlrp', 'gradxinput', 'cp-lrp'];

interface AttributeOptions extends AttributeRequest {
  model: string;
  file?: string;
  rule: RelevanceMode;
  device: Device;
  strictDevice?: boolean;
  offline?: boolean;
  cache: boolean;
  execution: ExecutionChoice;
  json?: string;
  color: boolean;
}

async function attribute(o: AttributeOptions): Promise<void> {
  const sources = [o.prompt !== undefined, o.file !== undefined, o.ids !== undefined].filter(Boolean).length;
  if (sources !== 1) throw new LrpLensError('bad-argument', 'Give exactly one of --prompt TEXT, --file F or --ids 1,2,3.');
  if (o.file && !existsSync(o.file)) throw new LrpLensError('bad-argument', `Prompt file not found: ${o.file}.`);
  const prompt = o.file ? readFileSync(o.file, 'utf8') : o.prompt;
  const engine = await AttributionEngine.load(o.model, {
    rule: o.rule,
    device: o.device,
    strictDevice: o.strictDevice,
    offline: o.offline,
    cache: o.cache,
    execution: o.execution,
  });
  try {
    const req: AttributeRequest = {
      prompt,
      ids: o.ids,
      target: o.target,
      targetId: o.targetId,
      foil: o.foil,
      foilId: o.foilId,
      continuation: o.continuation,
    };
    const result = await engine.attribute(req);
    if (result.execution) logExecution({ execution: result.execution.kind, reason: result.execution.reason });
    if (o.json) writeJson(o.json, result);
    if (o.json !== '-') console.log(renderSummary(result, o.color && !!process.stdout.isTTY && !process.env.NO_COLOR));
  } finally {
    await engine.release();
  }
}

function addAttributeOptions(c: Command): Command {
  return c
    .option('--model <folder|hub-id>', 'model folder (transformers.js layout) or hub id; default $LRP_LENS_MODEL', defaultModel())
    .option('--prompt <text>', 'prompt text')
    .option('--file <path>', 'read the prompt from a file')
    .option('--ids <ids>', 'comma-separated token ids instead of text', idsArg)
    .option('--target <text>', 'explain this next token (default: the top-1 prediction)')
    .option('--target-id <n>', 'explain this token id', intArg)
    .option('--foil <text>', 'contrastive foil: explain logit(target) − logit(foil)')
    .option('--foil-id <n>', 'foil token id', intArg)
    .option('--continuation <text>', 'attribute every token of this continuation (target × source matrix)')
    .addOption(new Option('--rule <rule>', 'relevance rules').choices(RULES).default('attnlrp'))
    .addOption(
      new Option('--device <device>', 'execution provider (cuda falls back to cpu with a warning)').choices(['cpu', 'cuda']).default('cpu'),
    )
    .option('--strict-device', 'fail instead of falling back to the CPU')
    .option('--offline', 'never download (also LRP_LENS_OFFLINE=1)')
    .option('--no-cache', 'recompile instead of using the compiled-graph cache')
    .addOption(executionOption())
    .option('--json <out>', "write the result as JSON ('-' for stdout)")
    .option('--no-color', 'plain output');
}

function renderReport(r: ModelReport): string {
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MB`;
  const lines = [
    `${r.model.onnx} (${mb(r.model.bytes)})`,
    `family ${r.family ?? '?'} (${r.architecture ?? '?'}), ${r.layers ?? '?'} layers, ${r.heads ?? '?'} heads / ${r.kvHeads ?? '?'} KV heads, hidden ${r.hiddenSize ?? '?'}, MLP ${r.intermediateSize ?? '?'}, vocab ${r.vocabSize ?? '?'}, context ${r.maxPositions ?? '?'}`,
    `${(r.parameters / 1e6).toFixed(2)}M parameters; weights ${
      Object.entries(r.precision)
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ') || 'none'
    }`,
    `opset ${r.opset}, IR ${r.irVersion}, producer ${r.producer || '?'}; export style: ${r.exportStyle}`,
    `external data: ${r.externalData ? `${r.externalData.files.join(', ')} (${mb(r.externalData.bytes)})` : 'none'}`,
    `ops: ${Object.entries(r.ops)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `rewrites: ${
      Object.entries(r.rewrites)
        .map(([k, v]) => `${k} ×${v}`)
        .join(', ') || 'none needed'
    }`,
    `devices: cpu${r.devices.cuda ? ', cuda' : ' (cuda provider not installed)'}`,
    r.attribution.supported
      ? `attribution: supported (${r.attribution.layers} layers, ${r.attribution.heads ?? '?'} heads, ${r.attribution.neurons ?? '?'} neurons)`
      : `attribution: NOT supported — ${r.attribution.reason}`,
    ...r.attribution.warnings.map((w) => `warning: ${w}`),
    ...(r.execution
      ? [
          `block-wise execution: ${r.execution.blockwise.supported ? `supported${queryChunks(r.execution.queryChunks)}` : `not possible — ${r.execution.blockwise.reason}`}`,
          ...r.execution.choices.map((c) => `execution at ${c.tokens} tokens: ${c.execution ?? 'refused'} — ${c.reason}`),
        ]
      : []),
  ];
  return lines.join('\n');
}

function queryChunks(q: { layers: number; chunks: number } | null): string {
  return q ? ` (causal attention of ${q.layers} layers in ${q.chunks} query chunks)` : ' (attention not causal: whole)';
}

export function buildProgram(): Command {
  const program = new Command('lrp-lens')
    .description('Layer-wise Relevance Propagation (AttnLRP) for ONNX language models')
    .showHelpAfterError()
    .exitOverride();
  addRunOptions(program);

  addAttributeOptions(program.command('attribute').description('attribute a prompt: token heatmap, layers, heads, neurons')).action(
    attribute,
  );

  program
    .command('demo')
    .description('attribute a sample prompt with $LRP_LENS_MODEL (or ../shared stories260k, or the default hub model)')
    .option('--model <folder|hub-id>', 'model', defaultModel())
    .action(async (o: { model: string }) => {
      console.log(`model: ${o.model}`);
      await attribute({
        model: o.model,
        prompt: 'Once upon a time, there was a little girl named',
        rule: 'attnlrp',
        device: 'cpu',
        cache: true,
        execution: 'auto',
        color: true,
      });
    });

  program
    .command('compile')
    .description('write the relevance graph (forward + relevance pass) as an ONNX file; it opens in Netron')
    .option('--model <folder|hub-id>', 'model folder or hub id', defaultModel())
    .requiredOption('--out <file>', 'output .onnx path')
    .addOption(new Option('--rule <rule>', 'relevance rules').choices(RULES).default('attnlrp'))
    .option('--weights', 'also emit per-weight relevance outputs (lrp_weight/<initializer>)')
    .option('--offline', 'never download')
    .action(async (o: { model: string; out: string; rule: RelevanceMode; weights?: boolean; offline?: boolean }) => {
      const model = await resolveModel(o.model, { offline: o.offline });
      const t0 = performance.now();
      const { graph, info } = await compileGraph(readModel(model.onnxPath), { mode: o.rule, weightRelevance: !!o.weights });
      // Self-contained, except that external data files (model.onnx_data) are linked beside it, not copied.
      writeModelReferencingSource(graph, dirname(resolve(o.out)), basename(o.out), false);
      const ms = performance.now() - t0;
      const rss = peakRssMB();
      console.log(
        `wrote ${o.out} in ${ms.toFixed(0)} ms (peak RSS ${rss.toFixed(0)} MB): ${info.layers} layers, ${info.heads ?? '?'} heads, ${info.neurons ?? '?'} neurons; outputs ${info.outputs.length}`,
      );
      for (const w of info.warnings) console.log(`warning: ${w}`);
    });

  program
    .command('inspect')
    .description('what a model is and whether it can be attributed: family, sizes, export style, ops, rewrites, precision')
    .option('--model <folder|hub-id>', 'model folder or hub id', defaultModel())
    .option('--json [out]', "write the report as JSON (to a file, or stdout with '-' or no value)")
    .option('--offline', 'never download')
    .action(async (o: { model: string; json?: string | boolean; offline?: boolean }) => {
      const report = await inspectModel(o.model, { offline: o.offline });
      if (o.json) writeJson(o.json === true ? '-' : o.json, report);
      if (o.json === undefined || (typeof o.json === 'string' && o.json !== '-')) console.log(renderReport(report));
    });

  registerModels(program);
  registerPruning(program);
  registerCircuits(program);
  registerCorrection(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (e.code?.startsWith('commander.'))
      return e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 2;
    if (LrpLensError.is(err)) {
      console.error(`error: ${err.message}`);
      return err.reason === 'bad-argument' ? 2 : 1;
    }
    console.error(`error: ${(err as Error).message ?? String(err)}`);
    if (process.env.LRP_LENS_DEBUG) console.error((err as Error).stack);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
