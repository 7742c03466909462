/** Locates ../shared (or $LRP_LENS_SHARED); tests that need it skip with a message only where it is absent. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const SHARED = process.env.LRP_LENS_SHARED ?? resolve(__dirname, '..', '..', '..', 'shared');
export const STORIES = join(SHARED, 'models', 'stories260k');
export const TINYSTORIES = join(SHARED, 'data', 'tinystories-sample.txt');

export function requireShared(ctx: Mocha.Context): void {
  if (!existsSync(join(STORIES, 'onnx', 'model.onnx'))) {
    console.warn(`    skipped: ${STORIES} is absent (set LRP_LENS_SHARED to the shared folder)`);
    ctx.skip();
  }
}
