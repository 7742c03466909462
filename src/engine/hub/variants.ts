/**
 * The precision variants of an ONNX model repo, named as transformers.js and Optimum name them
 * (`onnx/model.onnx`, `onnx/model_fp16.onnx`, `onnx/model_q4.onnx`, …), each with the external-data files
 * that come with it (`model.onnx_data`, `model.onnx_data_1`, …), and how exactly the engine attributes each.
 */
import { posix } from 'node:path';
import { LrpLensError } from '../errors';
import { formatBytes } from '../formatBytes';

export const DTYPES = ['fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4', 'q4f16', 'bnb4'] as const;
export type Dtype = (typeof DTYPES)[number];

/**
 * exact: relevance of the weights as stored (fp16 and 4-bit weights are widened / dequantised at compile time,
 * the arithmetic is float32); approximate: quantize_dynamic also rounds activations to 8 bits at run time, which
 * the relevance graph does not (logits move by about 1%); unsupported: refused by the compiler (MatMulBnb4).
 * See src/engine/relevance/rewrites/quantized.ts.
 */
export type Support = 'exact' | 'approximate' | 'unsupported';

const SUFFIX: Record<Dtype, string> = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  q4f16: '_q4f16',
  bnb4: '_bnb4',
};

export const SUPPORT: Record<Dtype, Support> = {
  fp32: 'exact',
  fp16: 'exact',
  q4: 'exact',
  q4f16: 'exact',
  q8: 'approximate',
  int8: 'approximate',
  uint8: 'approximate',
  bnb4: 'unsupported',
};

/** Decoder file stems in order of preference: the plain decoder, then older merged-decoder exports. */
const STEMS = ['model', 'decoder_model_merged', 'decoder_model'];
const FOLDERS = ['onnx/', ''];

export interface RepoFile {
  path: string;
  size: number;
}

export interface Variant {
  dtype: Dtype;
  /** The model file, e.g. `onnx/model_q4.onnx`. */
  file: string;
  /** External-data files beside it, by the naming convention (the model file itself is authoritative). */
  dataFiles: string[];
  /** Model file plus data files. */
  bytes: number;
  support: Support;
}

export function isDtype(s: string): s is Dtype {
  return (DTYPES as readonly string[]).includes(s);
}

/** The variants a repo listing holds, one per dtype (the first stem and folder that has it). */
export function listVariants(files: RepoFile[]): Variant[] {
  const bySize = new Map(files.map((f) => [f.path, f.size]));
  const out: Variant[] = [];
  for (const dtype of DTYPES) {
    const file = FOLDERS.flatMap((d) => STEMS.map((s) => `${d}${s}${SUFFIX[dtype]}.onnx`)).find((p) => bySize.has(p));
    if (!file) continue;
    const dataFiles = dataFilesOf(
      file,
      files.map((f) => f.path),
    );
    const bytes = [file, ...dataFiles].reduce((sum, p) => sum + (bySize.get(p) ?? 0), 0);
    out.push({ dtype, file, dataFiles, bytes, support: SUPPORT[dtype] });
  }
  return out;
}

/** `model.onnx_data`, `model.onnx_data_1`, … beside `file`. */
export function dataFilesOf(file: string, paths: string[]): string[] {
  const data = `${file}_data`;
  return paths.filter((p) => p === data || new RegExp(`^${escape(data)}_\\d+$`).test(p)).sort(naturalOrder);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function naturalOrder(a: string, b: string): number {
  return a.length - b.length || a.localeCompare(b);
}

/**
 * The variant to use: the one asked for, else the smallest the engine attributes exactly, else fp32.
 * Refuses a dtype the repo lacks, listing the ones it has.
 */
export function chooseVariant(variants: Variant[], repo: string, dtype?: Dtype): Variant {
  if (variants.length === 0) throw noOnnx(repo);
  if (dtype) {
    const v = variants.find((x) => x.dtype === dtype);
    if (!v)
      throw new LrpLensError(
        'model-not-found',
        `${repo} has no ${dtype} variant (onnx/model${SUFFIX[dtype]}.onnx). It has: ${describeVariants(variants)}. Pass one of those with --dtype (lrpLens.dtype in VS Code).`,
      );
    return v;
  }
  const exact = variants.filter((v) => v.support === 'exact').sort((a, b) => a.bytes - b.bytes);
  return exact[0] ?? variants.find((v) => v.dtype === 'fp32') ?? variants[0];
}

export function describeVariants(variants: Variant[]): string {
  return variants.map((v) => `${v.dtype} (${formatBytes(v.bytes)}${v.support === 'exact' ? '' : `, ${v.support}`})`).join(', ');
}

export function noOnnx(repo: string): LrpLensError {
  return new LrpLensError(
    'model-not-found',
    `${repo} has no ONNX model (no onnx/model*.onnx): it looks like a PyTorch-only repo. Export it with Optimum ` +
      `(optimum-cli export onnx --model ${repo} --task text-generation out/) and pass the folder, or pick an onnx-community/… model.`,
  );
}

/** The variant a local folder or snapshot holds at `onnxPath` (relative path inside it). */
export function dtypeOfFile(relPath: string): Dtype | undefined {
  const name = posix.basename(relPath, '.onnx');
  for (const stem of STEMS) {
    if (!name.startsWith(stem)) continue;
    const suffix = name.slice(stem.length);
    const hit = DTYPES.find((d) => SUFFIX[d] === suffix);
    if (hit) return hit;
  }
  return undefined;
}
