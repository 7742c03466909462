/**
 * A model whose attribution takes seconds (so the end-to-end test can press Cancel mid-run): Llama-shaped,
 * built with the project's own ONNX writer, random weights, with stories260k's tokenizer (vocabulary 512).
 * usage: tsx test/e2e/slowModel.ts OUT_DIR TOKENIZER_DIR   (writes OUT_DIR/{config,tokenizer*}.json, onnx/model.onnx)
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildLlamaLike } from '../fixtures/torchExports';
import { writeModel } from '../../src/engine/onnx/io';

const [out, tokenizerDir] = process.argv.slice(2);
if (!out || !tokenizerDir) throw new Error('usage: slowModel.ts OUT_DIR TOKENIZER_DIR');
const cfg = { layers: 8, hidden: 512, heads: 8, kvHeads: 8, ffn: 1536, vocab: 512, maxPositions: 4096, dtype: 'float32' as const, seed: 7 };
mkdirSync(join(out, 'onnx'), { recursive: true });
writeModel(buildLlamaLike(cfg), join(out, 'onnx', 'model.onnx'));
writeFileSync(
  join(out, 'config.json'),
  JSON.stringify(
    {
      model_type: 'llama',
      architectures: ['LlamaForCausalLM'],
      hidden_size: cfg.hidden,
      intermediate_size: cfg.ffn,
      num_hidden_layers: cfg.layers,
      num_attention_heads: cfg.heads,
      num_key_value_heads: cfg.kvHeads,
      vocab_size: cfg.vocab,
      max_position_embeddings: cfg.maxPositions,
      bos_token_id: 1,
      eos_token_id: 2,
    },
    null,
    1,
  ),
);
for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tokenizerDir, f), join(out, f));
