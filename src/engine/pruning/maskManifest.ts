/** A mask's manifest: the JSON file beside its bits that says what the mask was made on, how, and what it achieved. */
import { readFileSync } from 'node:fs';
import { achievedSparsity } from './allocation';
import { notAMaskFile, MASK_FORMAT, MASK_VERSION } from './maskBits';
import type { Allocation, Mask, PrunableWeight } from '../weights/types';

/** The reference set the scores were averaged over. */
export interface ReferenceSet {
  /** A file path, data set name or task id. */
  name: string;
  /** `sha256:<hex>` of the reference text or samples. */
  hash: string;
  samples?: number;
  tokens?: number;
}

/** What the caller says about a mask; `saveMask` adds the format, the achieved sparsity and the file hash. */
export interface MaskDescription {
  model: { id: string; contentHash: string };
  /** Scoring method: lrp, wanda, magnitude, gradient, random, or a feature's own (circuit, correction). */
  method: string;
  allocation: Allocation;
  structured?: boolean;
  /** The sparsity asked for (null where a search chose it, as circuit discovery does). */
  targetSparsity: number | null;
  /** The pruned weights' descriptions, for sparsity per transformer block. */
  weights?: PrunableWeight[];
  reference?: ReferenceSet | null;
  /** Numbers and curves (perplexity, task metric per sparsity, …); open for each feature to add its own. */
  metrics?: Record<string, unknown>;
  /** Anything else a feature needs to keep with the mask. */
  extra?: Record<string, unknown>;
}

export interface MaskManifest {
  format: typeof MASK_FORMAT;
  version: typeof MASK_VERSION;
  createdAt: string;
  model: { id: string; contentHash: string };
  method: string;
  allocation: Allocation;
  structured: boolean;
  sparsity: {
    target: number | null;
    overall: number;
    perWeight: Record<string, number>;
    perLayer: Record<string, number>;
  };
  reference: ReferenceSet | null;
  metrics: Record<string, unknown>;
  extra: Record<string, unknown>;
  /** The safetensors file of the pair (its base name) and its sha256, so a mismatched pair is refused. */
  tensors: { file: string; sha256: string; bitOrder: 'little' };
}

export function buildManifest(mask: Mask, description: MaskDescription, tensors: MaskManifest['tensors']): MaskManifest {
  const achieved = achievedSparsity(mask, description.weights ?? []);
  return {
    format: MASK_FORMAT,
    version: MASK_VERSION,
    createdAt: new Date().toISOString(),
    model: { id: description.model.id, contentHash: description.model.contentHash },
    method: description.method,
    allocation: description.allocation,
    structured: description.structured ?? false,
    sparsity: { target: description.targetSparsity, overall: achieved.overall, perWeight: achieved.perWeight, perLayer: achieved.perLayer },
    reference: description.reference ?? null,
    metrics: description.metrics ?? {},
    extra: description.extra ?? {},
    tensors,
  };
}

export function parseManifest(path: string): MaskManifest {
  let m: MaskManifest;
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as MaskManifest;
  } catch (err) {
    throw notAMaskFile(path, `it is not JSON (${(err as Error).message})`);
  }
  if (m?.format !== MASK_FORMAT) throw notAMaskFile(path, `it does not say format "${MASK_FORMAT}"`);
  if (m.version !== MASK_VERSION) throw notAMaskFile(path, `it is version ${m.version}; this LRP Lens reads version ${MASK_VERSION}`);
  if (typeof m.model?.contentHash !== 'string' || typeof m.tensors?.sha256 !== 'string')
    throw notAMaskFile(path, 'it lacks the model hash or the tensor file hash');
  return m;
}
