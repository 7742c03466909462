/**
 * Model folders in the transformers.js layout (config.json, tokenizer.json, onnx/model.onnx), from a local
 * path or a Hugging Face hub id (downloaded once into the cache unless offline). Tokenizer and config load
 * through @huggingface/transformers.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LrpLensError } from '../errors';
import { fetchHubModel } from '../hub/hubModel';
import type { HubOptions, HubSource } from '../hub/hubModel';
import { hubDefaults } from '../hub/hubDefaults';
import { isOfflineEnv } from '../hub/hubEnvironment';
import { looksLikeHubId } from '../hub/hubRef';
import { onnxRuntime } from './session';

export { DEFAULT_MODEL } from './defaultModel';

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
  /** A path, or for a hub model `org/name@<commit>` (the resolved commit, so reports and manifests pin it). */
  ref: string;
  dir: string;
  onnxPath: string;
  config: ModelConfig;
  /** Where a hub model came from (repo, revision, commit, variant). */
  hub?: HubSource;
}

export interface TokenizerLike {
  encode(text: string, options?: { add_special_tokens?: boolean }): number[];
  decode(ids: number[], options?: { skip_special_tokens?: boolean }): string;
}

const ONNX_CANDIDATES = ['onnx/model.onnx', 'model.onnx', 'onnx/decoder_model.onnx'];

export function isOffline(explicit?: boolean): boolean {
  return explicit ?? isOfflineEnv();
}

/**
 * Resolves a folder or hub id (`org/name[@revision]`, downloaded into the hub cache unless offline) to a local
 * model folder, validating the layout. Hub options default to those the caller set with setHubDefaults.
 */
export async function resolveModel(ref: string, opts: HubOptions = {}): Promise<ModelFolder> {
  if (looksLikeHubId(ref)) {
    const d = hubDefaults();
    const hub = await fetchHubModel(ref, {
      dtype: opts.dtype ?? d.dtype,
      onProgress: opts.onProgress ?? d.onProgress,
      signal: opts.signal ?? d.signal,
      offline: isOffline(opts.offline),
    });
    return { ...validateFolder(`${hub.hub.repo}@${hub.hub.commit}`, hub.dir, hub.onnxPath), hub: hub.hub };
  }
  return validateFolder(ref, resolve(ref));
}

function validateFolder(ref: string, dir: string, onnxPath?: string): ModelFolder {
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
  const onnx = onnxPath ?? ONNX_CANDIDATES.map((c) => join(dir, c)).find((p) => existsSync(p));
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
