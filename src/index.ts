// Public API. The same code runs in Node (WebGPU through the `webgpu` package) and in the browser.
// The declarations name GPUDevice, GPUBuffer, …: the reference below is kept in dist/node/index.d.ts so a consumer
// compiling with its own `types` list (e.g. only "node") still sees the WebGPU types (@webgpu/types is a dependency).
/// <reference types="@webgpu/types" preserve="true" />

export { MusicGen, InputError, AbortError, planWindows, readRequest, MAX_PROMPT_TOKENS } from './pipeline.js';
export type { GenerateRequest, AudioChunk, CheckedRequest, InputAudio, GenerateResult, Progress, LoadOptions, AudioData, NormalizationStrategy } from './pipeline.js';
export type { MusicgenModel } from './model/musicgen.js'; // the networks behind MusicGen (its `model`)
export { generateCodes } from './model/generate.js';
export { finetune, DEFAULT_LORA_RANK } from './train/clips.js';
export type { FinetuneOptions, FinetuneProgress, FinetuneResult } from './train/clips.js';
export type { TrainingClip } from './train/data.js';
export type { LogRecord } from './train/loop.js';
export { extractChroma } from './model/chroma.js';
export { initRuntime, runtime, Runtime } from './runtime.js';
export { parseLimits, LIMITS_MODES, type LimitsMode, type DeviceOptions } from './device.js';
export { Tensor, tidy, keep } from './tensor.js';
export { decodeAudio } from './audio/decode.js';
export { resample, prepareAudio } from './audio/resample.js';
export { resampleFrac, ResampleFrac, demucsConvertAudio, audiocraftConvertAudio } from './audio/julius.js';
export { separate, openDemucs } from './separate.js';
export type { SeparateOptions, SeparateResult, DemucsSource, DemucsLoadOptions, StemSeparator } from './separate.js';
export { stemmedMelody, HTDEMUCS_URL, MELODY_STEMS } from './model/stems.js';
export { normalizeAudio, integratedLoudness } from './audio/normalize.js';
export { encodeWav, encodeMp3 } from './audio/encode.js';
export { SafetensorsFile, SafetensorsCheckpoint, encodeSafetensors } from './io/safetensors.js';
export { urlFolder, openCheckpointUrl } from './io/url-source.js';
export { cachedUrlFolder, listStoredModels, clearStoredModels, canStoreWeights, StorageQuotaError, WEIGHT_CACHE } from './io/url-cache.js';
export type { StoredFile, DownloadProgress, CachedUrlOptions } from './io/url-cache.js';
export { openCheckpoint } from './io/checkpoint.js';
export { TorchFile, TorchStateDict, TorchTensor, openTorchStateDict } from './io/pytorch.js';
export { PyDict, PyGlobal, PyFraction, PyObject, UnpicklingError } from './io/pickle.js';
export * as ops from './ops.js';
