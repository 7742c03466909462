/**
 * Circuit discovery as one call, shared by `lrp-lens circuit` and the extension's engine process: load the model,
 * split the task by template and name (discovery never sees the held-out templates), sweep each method's
 * faithfulness curve, pick the circuit on the held-out templates, measure it in- and out-of-template (and on a
 * task file the user brings), build its graph, and write `circuit.json` (schema `lrp-lens/circuit@1`),
 * `circuit.svg` and `mask.safetensors + mask.json` into `out`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LrpLensError } from '../errors';
import type { Device } from '../runtime/session';
import type { ExecutionChoice, ExecutionDecision } from '../runtime/execution';
import { PruningSession } from '../pruning/prune';
import type { Stage } from '../pruning/prune';
import { checkMethod } from '../pruning/scores';
import type { ScoreMethod } from '../pruning/scores';
import { parseWeightSelection } from '../pruning/prunable';
import { saveMask } from '../pruning/maskFile';
import type { Mask } from '../weights/types';
import { readTaskFile, splitByTemplate, tokenizeTask } from '../tasks/taskFile';
import type { TaskMetric, TokenizedSample } from '../tasks/taskFile';
import { allocationFor, circuitCurve, componentAllocator, evaluateTask } from './search';
import type { Granularity, MethodCurve, Ranking } from './search';
import { buildCircuitGraph } from './circuitGraph';
import { headDisplayMask, headSizeFromConfig } from './heads';
import { circuitGraphToJson, circuitGraphToSvg } from './circuitLayout';
import { stabilityOf } from './stability';
import type { ConsensusScores, StabilityReport } from './stability';
import { checkOutputPaths, circuitOutputs } from '../outputPaths';

export const CIRCUIT_SCHEMA = 'lrp-lens/circuit@1';

export interface DiscoverOptions {
  model: string;
  /** The task file (*.task.jsonl). */
  task: string;
  method: string;
  /** Other methods whose curves are recorded too. */
  compare?: string[];
  granularity: Granularity;
  ranking: Ranking;
  threshold: number;
  metric?: TaskMetric;
  heldOut?: number;
  seed?: number;
  /** General text: the circuit's perplexity as a control. */
  general?: string;
  layers?: string;
  topK?: number;
  device?: Device;
  /** How weight relevance is collected: monolithic graph, block-wise, or auto (by the memory estimate). */
  execution?: ExecutionChoice;
  /** Never download a hub model (else LRP_LENS_OFFLINE / HF_HUB_OFFLINE decide). */
  offline?: boolean;
  /** Output folder for circuit.json, circuit.svg, mask.safetensors + mask.json. */
  out: string;
  /** Another task file the circuit is measured on (never used to find or choose it). */
  heldOutTask?: string;
  /** Bootstrap resamples of the training templates for the consensus ranking (default 20; 0: the plain mean). */
  resamples?: number;
  /** Also written: the record as JSON (checked against the output folder's files). */
  json?: string;
}

export type DiscoverStage = Stage | 'sweep' | 'write';

export interface DiscoverProgress {
  signal?: AbortSignal;
  /** `sweep` counts evaluated sparsities over all methods; `collect`, `evaluate` their own batches. */
  onProgress?: (stage: DiscoverStage, done: number, total: number, detail?: string) => void;
  /** Which execution collects weight relevance and why (the run log). */
  onExecution?: (decision: ExecutionDecision) => void;
}

/** A held-out sample with its metric on the dense model and on the circuit (for "top task samples"). */
export interface CircuitSample {
  line: number;
  prompt: string;
  target: string;
  foil?: string;
  dense: number;
  circuit: number;
}

/** The task metric on one set of prompts: dense, with the circuit, and their ratio. */
export interface Faithfulness {
  samples: number;
  dense: number;
  circuit: number;
  retained: number;
}

export interface CircuitRecord {
  schema: typeof CIRCUIT_SCHEMA;
  /**
   * `train`: samples discovery scored on; `heldOut`: the selection set the circuit is chosen on (held-out templates,
   * or a share of samples where the task has no templates); `split` says which.
   */
  task: {
    path: string;
    name: string;
    metric: TaskMetric;
    train: number;
    heldOut: number;
    split?: { by: 'template' | 'sample'; heldOutTemplates: string[]; heldOutNames: string[]; inTemplate: number };
  };
  model: string;
  method: ScoreMethod;
  granularity: Granularity;
  ranking: Ranking;
  threshold: number;
  dense: { metric: number; perplexity: number | null };
  circuit: { sparsity: number; targetSparsity: number; metric: number; retained: number; perplexity: number | null };
  control: { text: string; densePerplexity?: number; circuitPerplexity?: number } | null;
  /**
   * Side by side: discovery's templates with unseen names (`inTemplate`), the held-out templates the circuit was
   * chosen on (`outOfTemplate`, null for a task without templates), and a task file never used (`heldOutTask`).
   */
  faithfulness?: {
    inTemplate: Faithfulness | null;
    outOfTemplate: Faithfulness | null;
    heldOutTask: (Faithfulness & { path: string }) | null;
  };
  /** How often the circuit's components are chosen over bootstrap resamples of the training templates. */
  stability?: StabilityReport;
  curves: MethodCurve[];
  /** The held-out samples in file order, each with its dense and circuit metric. */
  samples: CircuitSample[];
  graph: Record<string, unknown>;
  /** Files written, relative to the output folder. */
  files: { circuit: string; svg: string; mask: string; manifest: string };
}

export function parseMethods(method: string, compare: readonly string[] = []): ScoreMethod[] {
  const all = [method, ...compare].map((m) => m.trim()).filter((m) => m !== '');
  return [...new Set(all.map(checkMethod))];
}

export async function discoverCircuit(o: DiscoverOptions, p: DiscoverProgress = {}): Promise<CircuitRecord> {
  const methods = parseMethods(o.method, o.compare);
  checkOutputPaths(circuitOutputs(o.out, o.json), [
    { flag: '--task', path: o.task },
    o.heldOutTask ? { flag: '--held-out-task', path: o.heldOutTask } : undefined,
    o.general ? { flag: '--general', path: o.general } : undefined,
  ]);
  const report = p.onProgress ?? (() => undefined);
  report('load', 0, 1, o.model);
  const session = await PruningSession.open({
    model: o.model,
    device: o.device,
    execution: o.execution,
    onExecution: p.onExecution,
    offline: o.offline,
    selection: parseWeightSelection(o.layers),
    signal: p.signal,
    onProgress: (stage, done, total) => report(stage, done, total),
  });
  try {
    report('load', 1, 1, o.model);
    return await runDiscovery(session, methods, o, report);
  } finally {
    await session.close();
  }
}

type Report = NonNullable<DiscoverProgress['onProgress']>;

async function runDiscovery(session: PruningSession, methods: ScoreMethod[], o: DiscoverOptions, report: Report): Promise<CircuitRecord> {
  const task = readTaskFile(o.task, session.tokenizer);
  const metric = o.metric ?? task.header.metric;
  const split = splitByTemplate(tokenizeTask(task, session.tokenizer, o.task), { seed: o.seed ?? 0, heldOut: o.heldOut ?? 0.3 });
  const { train } = split;
  // The circuit is chosen on the held-out templates; without templates, on held-out samples.
  const byTemplate = split.by === 'template';
  const heldOut = byTemplate ? split.outOfTemplate : split.inTemplate;
  const inTemplate = byTemplate && split.inTemplate.length > 0 ? split.inTemplate : undefined;
  const external = o.heldOutTask
    ? tokenizeTask(readTaskFile(o.heldOutTask, session.tokenizer), session.tokenizer, o.heldOutTask)
    : undefined;
  const denseEval = await evaluateTask(session, heldOut, metric);
  const dense = denseEval.mean;
  const denseIn = inTemplate ? (await evaluateTask(session, inTemplate, metric)).mean : undefined;
  const denseExternal = external ? (await evaluateTask(session, external, metric)).mean : undefined;
  const general = o.general ? session.samples(o.general, { seqLen: 128 }, 'general') : undefined;
  const densePerplexity = general ? (await session.perplexity(general.samples)).perplexity : undefined;
  const curves = await sweep(
    session,
    methods,
    train,
    heldOut,
    dense,
    {
      metric,
      granularity: o.granularity,
      ranking: o.ranking,
      threshold: o.threshold,
      inTemplate: inTemplate && { samples: inTemplate, dense: denseIn! },
      resamples: o.resamples,
      seed: o.seed,
    },
    report,
  );
  const main = curves[0];
  if (!main.chosen) {
    throw new LrpLensError(
      'bad-argument',
      `No sparsity keeps ${o.threshold} × the dense ${metric} on the held-out ${byTemplate ? 'templates and names' : 'samples'} with ${main.method}; lower the threshold, add samples or templates, or try another granularity (heads is the most robust).`,
    );
  }
  const mask = main.masks.get(main.chosen.sparsity)!;
  const circuitEval = await evaluateTask(session, heldOut, metric, mask);
  const faithfulness = {
    inTemplate: inTemplate ? await faithfulnessOf(session, inTemplate, metric, denseIn!, mask) : null,
    outOfTemplate: byTemplate ? { samples: heldOut.length, dense, circuit: circuitEval.mean, retained: circuitEval.mean / dense } : null,
    heldOutTask: external ? { path: o.heldOutTask!, ...(await faithfulnessOf(session, external, metric, denseExternal!, mask)) } : null,
  };
  if (!byTemplate)
    faithfulness.inTemplate = { samples: heldOut.length, dense, circuit: circuitEval.mean, retained: circuitEval.mean / dense };
  const circuitPerplexity = general ? (await session.perplexity(general.samples, mask)).perplexity : undefined;
  report('write', 0, 1);
  const headSize = o.granularity === 'heads' ? headSizeFromConfig(session.folder.config) : undefined;
  const stability = stabilityOf(
    main.consensus,
    mask,
    (scores) =>
      componentAllocator(session, scores, { metric, granularity: o.granularity, ranking: o.ranking, threshold: o.threshold }).mask(
        main.chosen!.sparsity,
      ),
    session.weights,
    o.granularity,
    headSize ?? 0,
  );
  const shown = headSize ? headDisplayMask(mask, session.weights, headSize) : mask;
  const graph = buildCircuitGraph({
    weights: session.weights,
    scores: main.scores,
    mask: shown,
    granularity: o.granularity,
    topK: o.topK ?? 50,
    headSize,
  });
  const record: CircuitRecord = {
    schema: CIRCUIT_SCHEMA,
    task: {
      path: o.task,
      name: task.header.name,
      metric,
      train: train.length,
      heldOut: heldOut.length,
      split: {
        by: split.by,
        heldOutTemplates: split.heldOutTemplates,
        heldOutNames: split.heldOutNames,
        inTemplate: inTemplate?.length ?? 0,
      },
    },
    model: session.folder.ref,
    method: main.method,
    granularity: o.granularity,
    ranking: o.ranking,
    threshold: o.threshold,
    dense: { metric: dense, perplexity: densePerplexity ?? null },
    circuit: {
      sparsity: main.chosen.achieved,
      targetSparsity: main.chosen.sparsity,
      metric: main.chosen.metric,
      retained: main.chosen.retained,
      perplexity: circuitPerplexity ?? null,
    },
    control: general ? { text: general.source, densePerplexity, circuitPerplexity } : null,
    faithfulness,
    stability,
    curves: curves.map(stripMasks),
    samples: heldOut.map((s, i) => sampleOf(s, denseEval.perSample[i], circuitEval.perSample[i])),
    graph: JSON.parse(circuitGraphToJson(graph)) as Record<string, unknown>,
    files: { circuit: 'circuit.json', svg: 'circuit.svg', mask: 'mask.safetensors', manifest: 'mask.json' },
  };
  const dir = resolve(o.out);
  mkdirSync(dir, { recursive: true });
  writeMask(session, join(dir, 'mask'), mask, record, task.samples.length);
  writeFileSync(join(dir, 'circuit.json'), JSON.stringify(record, null, 2) + '\n');
  writeFileSync(
    join(dir, 'circuit.svg'),
    circuitGraphToSvg(graph, { title: `${task.header.name} — ${main.method}, ${(main.chosen.achieved * 100).toFixed(1)}% pruned` }),
  );
  report('write', 1, 1);
  return record;
}

async function faithfulnessOf(
  session: PruningSession,
  samples: TokenizedSample[],
  metric: TaskMetric,
  dense: number,
  mask: Mask,
): Promise<Faithfulness> {
  const circuit = (await evaluateTask(session, samples, metric, mask)).mean;
  return { samples: samples.length, dense, circuit, retained: circuit / dense };
}

async function sweep(
  session: PruningSession,
  methods: ScoreMethod[],
  train: TokenizedSample[],
  heldOut: TokenizedSample[],
  dense: number,
  opts: Parameters<typeof circuitCurve>[5],
  report: Report,
): Promise<
  (MethodCurve & { masks: Map<number, Mask>; scores: Parameters<typeof buildCircuitGraph>[0]['scores']; consensus: ConsensusScores })[]
> {
  const curves = [];
  for (const [i, m] of methods.entries()) {
    const onPoint = (done: number, total: number) => report('sweep', i * total + done, methods.length * total, m);
    curves.push(await circuitCurve(session, m, train, heldOut, dense, { ...opts, onPoint }));
    // Only the chosen method's masks and scores are needed later; drop the others' early.
    if (i > 0) Object.assign(curves[i], { masks: new Map(), scores: new Map() });
  }
  return curves;
}

function sampleOf(s: TokenizedSample, dense: number, circuit: number): CircuitSample {
  return { line: s.line, prompt: s.prompt, target: s.target, foil: s.foil, dense, circuit };
}

function writeMask(session: PruningSession, path: string, mask: Mask, record: CircuitRecord, samples: number): void {
  const contentHash = session.contentHash();
  const allocation = allocationFor(record.granularity, record.ranking);
  saveMask(path, mask, {
    model: { id: session.folder.ref, contentHash },
    method: `circuit:${record.method}`,
    allocation: allocation.allocation,
    structured: !!allocation.structured,
    targetSparsity: null,
    weights: session.weights,
    reference: { name: record.task.path, hash: `sha256:${samples}`, samples: record.task.train },
    metrics: { task: record.task, dense: record.dense, circuit: record.circuit, curves: record.curves },
  });
}

function stripMasks(c: MethodCurve & { masks?: unknown; scores?: unknown }): MethodCurve {
  return { method: c.method, points: c.points, chosen: c.chosen, collectMs: c.collectMs };
}
