/**
 * The Circuits sidebar's data, as a pure function of the files found in the workspace: circuit folders (a
 * `circuit.json` of schema lrp-lens/circuit@1) and masks (`*.json` manifests with format `lrp-lens-mask`).
 * A circuit's own mask (mask.json beside circuit.json) is listed under the circuit, not again as a mask.
 */
import { basename, dirname, relative } from 'node:path';

export interface FoundFile {
  /** Absolute path of the JSON file. */
  path: string;
  /** Its parsed content (anything: files are checked here). */
  content: unknown;
}

export type TreeNodeKind = 'group' | 'circuit' | 'mask' | 'empty';

export interface TreeNode {
  /** Stable id: the group name or the file's path. */
  id: string;
  kind: TreeNodeKind;
  label: string;
  description: string;
  tooltip: string;
  /** circuit: circuit.json; mask: the manifest. */
  path?: string;
  /** The mask manifest to apply (a circuit's own mask.json; a mask's manifest). */
  maskPath?: string;
  /** circuit: its folder (what delete removes); mask: undefined (delete removes the pair). */
  folder?: string;
  children: TreeNode[];
}

interface CircuitJson {
  schema: string;
  task: { name: string; metric: string };
  method: string;
  granularity: string;
  circuit: { sparsity: number; metric: number; retained: number };
  model?: string;
}

interface MaskJson {
  format: string;
  method: string;
  model?: { id?: string };
  sparsity?: { overall?: number };
  metrics?: Record<string, unknown>;
  reference?: { name?: string } | null;
  tensors?: { file?: string };
}

export function isCircuitJson(v: unknown): v is CircuitJson {
  const c = v as CircuitJson;
  return (
    typeof c === 'object' &&
    c !== null &&
    c.schema === 'lrp-lens/circuit@1' &&
    typeof c.task?.name === 'string' &&
    typeof c.circuit?.sparsity === 'number'
  );
}

export function isMaskManifest(v: unknown): v is MaskJson {
  return typeof v === 'object' && v !== null && (v as MaskJson).format === 'lrp-lens-mask' && typeof (v as MaskJson).method === 'string';
}

const pct = (v: number) => `${(v * 100).toFixed(1)}%`;

export function formatMetric(v: number): string {
  return Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(3) : v.toExponential(2);
}

/** Two groups, Circuits and Masks, sorted by label; `root` makes tooltips' paths workspace-relative. */
export function buildCircuitsTree(files: readonly FoundFile[], root = ''): TreeNode[] {
  const circuits = files
    .filter((f) => basename(f.path) === 'circuit.json' && isCircuitJson(f.content))
    .map((f) => circuitNode(f, files, root));
  const circuitFolders = new Set(circuits.map((c) => c.folder));
  const masks = files.filter((f) => isMaskManifest(f.content) && !circuitFolders.has(dirname(f.path))).map((f) => maskNode(f, root));
  return [
    group('circuits', 'Circuits', circuits, 'No circuits yet: run "Discover Circuit…" on a *.task.jsonl file.'),
    group('masks', 'Masks', masks, 'No masks in the workspace.'),
  ];
}

function group(id: string, label: string, children: TreeNode[], emptyText: string): TreeNode {
  const sorted = [...children].sort((a, b) => a.label.localeCompare(b.label) || a.id.localeCompare(b.id));
  const kids = sorted.length
    ? sorted
    : [{ id: `${id}/empty`, kind: 'empty' as const, label: emptyText, description: '', tooltip: emptyText, children: [] }];
  return {
    id,
    kind: 'group',
    label,
    description: String(children.length),
    tooltip: `${children.length} ${label.toLowerCase()}`,
    children: kids,
  };
}

function circuitNode(f: FoundFile, files: readonly FoundFile[], root: string): TreeNode {
  const c = f.content as CircuitJson;
  const folder = dirname(f.path);
  const ownMask = files.find((m) => dirname(m.path) === folder && isMaskManifest(m.content));
  const metric = `${c.task.metric} ${formatMetric(c.circuit.metric)} (${pct(c.circuit.retained)} kept)`;
  const where = root ? relative(root, folder) || '.' : folder;
  return {
    id: f.path,
    kind: 'circuit',
    label: c.task.name,
    description: `${c.method} · ${c.granularity} · ${pct(c.circuit.sparsity)} pruned · ${metric}`,
    tooltip: [
      `Circuit for task ${c.task.name}`,
      `method ${c.method}, granularity ${c.granularity}`,
      `sparsity ${pct(c.circuit.sparsity)}`,
      metric,
      c.model ? `model ${c.model}` : '',
      where,
    ]
      .filter(Boolean)
      .join('\n'),
    path: f.path,
    maskPath: ownMask?.path,
    folder,
    children: [],
  };
}

function maskNode(f: FoundFile, root: string): TreeNode {
  const m = f.content as MaskJson;
  const sparsity = m.sparsity?.overall;
  const metric = maskMetric(m.metrics ?? {});
  const name = basename(f.path).replace(/\.json$/i, '');
  const task = m.reference?.name ? basename(m.reference.name) : undefined;
  return {
    id: f.path,
    kind: 'mask',
    label: name,
    description: [task, m.method, sparsity === undefined ? undefined : `${pct(sparsity)} pruned`, metric].filter(Boolean).join(' · '),
    tooltip: [
      `Mask ${name}`,
      `method ${m.method}`,
      task ? `reference ${task}` : '',
      sparsity === undefined ? '' : `sparsity ${pct(sparsity)}`,
      metric ?? '',
      m.model?.id ? `model ${m.model.id}` : '',
      root ? relative(root, f.path) : f.path,
    ]
      .filter(Boolean)
      .join('\n'),
    path: f.path,
    maskPath: f.path,
    children: [],
  };
}

/** The manifest's headline number: a circuit's task metric, else a perplexity, else a behaviour metric. */
function maskMetric(metrics: Record<string, unknown>): string | undefined {
  const circuit = metrics.circuit as { metric?: number } | undefined;
  const task = metrics.task as { metric?: string } | undefined;
  if (typeof circuit?.metric === 'number') return `${task?.metric ?? 'metric'} ${formatMetric(circuit.metric)}`;
  for (const key of ['perplexity', 'behaviour', 'metric']) {
    const v = metrics[key];
    if (typeof v === 'number') return `${key} ${formatMetric(v)}`;
  }
  return undefined;
}
