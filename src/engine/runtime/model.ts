/**
 * Model folders in the transformers.js layout (config.json, tokenizer.json, onnx/model.onnx), from a local
 * path or a Hugging Face hub id (downloaded once into the cache unless offline). Tokenizer and config load
 * through @huggingface/transformers.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LrpLensError } from '../errors';
import { cacheDir } from './cacheDir';
import { onnxRuntime } from './session';

export const DEFAULT_MODEL = 'onnx-community/SmolLM2-135M-ONNX';

export interface ModelConfig {
  model_type?: string;
  architectures?: string[];
  num_hidden_layers?: number;
  n_layer?: number;
  max_position_embeddings?: number;
  n_positions?: number;
  is_encoder_decoder?: boolean;
  bos_token_id?: number;
  eos_token_id?: number | number[];
  pad_token_id?: number;
  [key: string]: unknown;
}

export interface ModelFolder {
  /** What the user gave: a path or hub id. */
  ref: string;
  dir: string;
  onnxPath: string;
  config: ModelConfig;
}

export interface TokenizerLike {
  encode(text: string, options?: { add_special_tokens?: boolean }): number[];
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
}

const ONNX_CANDIDATES = ['onnx/model.onnx', 'model.onnx', 'onnx/decoder_model.onnx'];
const HUB_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'onnx/model.onnx'];
const OPTIONAL_HUB_FILES = new Set(['generation_config.json']);

export function isOffline(explicit?: boolean): boolean {
  return explicit ?? ['1', 'true', 'yes'].includes((process.env.LRP_LENS_OFFLINE ?? process.env.HF_HUB_OFFLINE ?? '').toLowerCase());
}

function looksLikeHubId(ref: string): boolean {
  return /^[\w.-]+\/[\w.-]+$/.test(ref) && !existsSync(ref);
}

/** Resolves a folder or hub id to a local model folder, validating the layout. */
export async function resolveModel(ref: string, opts: { offline?: boolean } = {}): Promise<ModelFolder> {
  const dir = looksLikeHubId(ref) ? await fromHub(ref, isOffline(opts.offline)) : resolve(ref);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new LrpLensError(
      'model-not-found',
      `Model folder not found: ${dir}. Pass a folder in the transformers.js layout (config.json, tokenizer.json, onnx/model.onnx) or a hub id.`,
    );
  }
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath))
    throw new LrpLensError('not-causal-lm', `${dir} has no config.json: it is not a model folder in the transformers.js layout.`);
  let config: ModelConfig;
  try {
    config = JSON.parse(readFileSync(configPath, 'utf8')) as ModelConfig;
  } catch (err) {
    throw new LrpLensError('model-corrupt', `${configPath} is not valid JSON (${(err as Error).message}).`, err);
  }
  checkCausal(config, dir);
  if (!existsSync(join(dir, 'tokenizer.json')))
    throw new LrpLensError(
      'model-not-found',
      `${dir} has no tokenizer.json; the tokenizer is needed to attribute text. Copy the model's tokenizer.json (and tokenizer_config.json) into the folder, or choose a complete model folder.`,
    );
  const onnx = ONNX_CANDIDATES.map((c) => join(dir, c)).find((p) => existsSync(p));
  if (!onnx)
    throw new LrpLensError(
      'model-not-found',
      `${dir} has no ONNX file (looked for ${ONNX_CANDIDATES.join(', ')}). Export the model with Optimum or download its onnx/ folder.`,
    );
  return { ref, dir, onnxPath: onnx, config };
}

function checkCausal(config: ModelConfig, dir: string): void {
  const arch = (config.architectures ?? []).join(',');
  const notCausal =
    config.is_encoder_decoder ||
    (/ForMaskedLM|ForSequenceClassification|ForTokenClassification|ForQuestionAnswering|Model$/.test(arch) &&
      !/CausalLM|LMHead/.test(arch));
  if (notCausal) {
    throw new LrpLensError(
      'not-causal-lm',
      `${dir} holds a ${arch || config.model_type} model, not a causal language model (architectures should end in ForCausalLM or LMHeadModel).`,
    );
  }
}

async function fromHub(id: string, offline: boolean): Promise<string> {
  const dir = join(cacheDir(), 'hub', ...id.split('/'));
  const missing = HUB_FILES.filter((f) => !existsSync(join(dir, f)) && !OPTIONAL_HUB_FILES.has(f));
  if (missing.length === 0) return dir;
  if (offline) {
    throw new LrpLensError(
      'model-not-found',
      `Model ${id} is not in the cache (${dir}) and downloads are disabled (--offline / LRP_LENS_OFFLINE). Run once online or pass a local folder.`,
    );
  }
  const { env } = await import('@huggingface/transformers');
  const host = (env.remoteHost ?? 'https://huggingface.co/').replace(/\/?$/, '/');
  for (const file of HUB_FILES) {
    const target = join(dir, file);
    if (existsSync(target)) continue;
    const url = `${host}${id}/resolve/main/${file}`;
    let res: Response;
    try {
      res = await fetch(url);
    } catch (err) {
      throw new LrpLensError(
        'model-not-found',
        `Could not download ${url} (${(err as Error).message}). Check the network or pass a local model folder.`,
        err,
      );
    }
    if (!res.ok) {
      if (OPTIONAL_HUB_FILES.has(file)) continue;
      throw new LrpLensError(
        'model-not-found',
        `Downloading ${url} failed with HTTP ${res.status}. Is '${id}' a hub id with an onnx/model.onnx file?`,
      );
    }
    mkdirSync(join(target, '..'), { recursive: true });
    writeFileSync(`${target}.part`, Buffer.from(await res.arrayBuffer()));
    renameSync(`${target}.part`, target);
  }
  return dir;
}

/** The tokenizer through transformers.js, never touching the network for a local folder. */
export async function loadTokenizer(model: ModelFolder): Promise<TokenizerLike> {
  onnxRuntime(); // transformers.js loads onnxruntime-node when imported: a missing binary gets its clear error first
  const t = await import('@huggingface/transformers');
  t.env.allowRemoteModels = false;
  t.env.localModelPath = '';
  try {
    const tok = await t.AutoTokenizer.from_pretrained(model.dir);
    return tok as unknown as TokenizerLike;
  } catch (err) {
    throw new LrpLensError('model-corrupt', `The tokenizer in ${model.dir} could not be loaded: ${(err as Error).message}`, err);
  }
}

export function maxPositions(config: ModelConfig): number | undefined {
  return config.max_position_embeddings ?? config.n_positions ?? undefined;
}
