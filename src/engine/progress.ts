/** Progress of long work (downloads, reference collection, sweeps, evaluation), as the CLI and VS Code show it. */
export interface ProgressEvent {
  /** What is running: 'download', 'collect', 'sweep', 'evaluate', … */
  stage: string;
  done: number;
  total: number;
  /** What done/total count: bytes for downloads, else items (samples, points, batches). */
  unit?: 'bytes' | 'items';
  /** The file or item, for the message. */
  detail?: string;
}

export type ProgressListener = (e: ProgressEvent) => void;
