/** The model used when none is set; its own module, so the extension host reads it without the hub client. */
export const DEFAULT_MODEL = 'onnx-community/SmolLM2-135M-ONNX';
