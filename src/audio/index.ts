// Browser-safe audio plumbing for the MusicGen predictor: decode input audio, convert it to the model's
// rate and channels, normalise and encode the output. Node-only file access is in ./file.ts.

export { decodeAudio, AudioDecodeError, SUPPORTED_FORMATS, type AudioData } from './decode.js';
export { resample, resampledLength, toMono, prepareAudio, type ResampleQuality } from './resample.js';
export { ResampleFrac, resampleFrac, convertAudioChannels, demucsConvertAudio, audiocraftConvertAudio, type ResampleFracOptions } from './julius.js';
export {
  normalizeAudio,
  integratedLoudness,
  kWeightingFilters,
  rms,
  NORMALIZATION_STRATEGIES,
  type NormalizationStrategy,
  type NormalizeOptions,
  type Biquad,
} from './normalize.js';
export { encodeWav, encodeMp3, encodeAudio, toInt16, MP3_SAMPLE_RATES, type OutputFormat } from './encode.js';
