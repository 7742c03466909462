/** `lrp-lens models ID`: the precision variants a hub repo has, with sizes and how the engine supports each. */
import type { Command } from 'commander';
import { hubVariants } from '../engine/hub/hubModel';
import { chooseVariant, noOnnx } from '../engine/hub/variants';
import { formatBytes } from '../engine/formatBytes';
import { markdownTable, writeJson } from './common';

const SUPPORT_TEXT = {
  exact: 'exact',
  approximate: 'approximate (activations rounded at run time)',
  unsupported: 'not supported (MatMulBnb4)',
};

export function registerModels(program: Command): void {
  program
    .command('models')
    .description('list the ONNX variants (dtypes) of a hub model with sizes and engine support; nothing is downloaded')
    .argument('<id>', 'hub id: org/name[@revision]')
    .option('--offline', 'list what the hub cache holds')
    .option('--json <out>', "write the list as JSON ('-' for stdout)")
    .action(async (id: string, o: { offline?: boolean; json?: string }) => {
      const r = await hubVariants(id, { offline: o.offline });
      if (r.variants.length === 0) throw noOnnx(r.repo);
      const chosen = chooseVariant(r.variants, r.repo).dtype;
      if (o.json) writeJson(o.json, { schema: 'lrp-lens/models@1', ...r, default: chosen });
      if (o.json === '-') return;
      console.log(`${r.repo}@${r.commit}`);
      console.log(
        markdownTable(
          ['dtype', 'file', 'size', 'attribution', 'cached'],
          r.variants.map((v) => [
            v.dtype === chosen ? `${v.dtype} (default)` : v.dtype,
            [v.file, ...v.dataFiles].join(' + '),
            formatBytes(v.bytes),
            SUPPORT_TEXT[v.support],
            r.cached.includes(v.dtype) ? 'yes' : 'no',
          ]),
        ),
      );
    });
}
