import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { Graph } from '../src/engine/onnx/graph';
import { decodeModel } from '../src/engine/onnx/io';
import { causalLmFeeds, inputSpecs } from '../src/engine/runtime/feeds';
import { int64Tensor, floatTensor } from '../src/engine/runtime/session';
(async () => {
  const path = process.argv[2]; const S = Number(process.argv[3]);
  const graph = new Graph(decodeModel(readFileSync(path)));
  const s = await ort.InferenceSession.create(path, { enableProfiling: true, profileFilePrefix: '/tmp/ortprof', logSeverityLevel: 3 });
  const ids = Array.from({ length: S }, (_, i) => 1 + (i * 7) % 250);
  const feeds = causalLmFeeds(inputSpecs(graph.inputs), { ids: [ids], mask: [ids.map(() => 1)] });
  if (graph.inputs.some(i => i.name === 'lrp_target_ids')) {
  feeds.lrp_target_ids = int64Tensor(ids.map(() => -1), [1, S]);
  feeds.lrp_target_weights = floatTensor('float32', ids.map((_, i) => i === S - 1 ? 1 : 0), [1, S]);
  feeds.lrp_foil_ids = int64Tensor(ids.map(() => 0), [1, S]);
  feeds.lrp_foil_weights = floatTensor('float32', ids.map(() => 0), [1, S]); }
  for (let i = 0; i < 2; i++) await s.run(feeds);
  (s as any).endProfiling();
})();
