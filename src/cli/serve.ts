// `npm run serve -- --model DIR|HUB_ID|NAME [--port 5000] [--host 127.0.0.1] [--queue N] [...]`, or
// `--models melody-large,small` (Cog's `model_version` choices, each loaded on first use) instead of --model.
// A Cog-compatible HTTP server for MusicGen (predictions and trainings) and the web page, in one process
// (src/server/app.ts). Existing Cog / Replicate-style clients work unchanged:
//
//   curl -s -X POST localhost:5000/predictions -H 'Content-Type: application/json' \
//     -d '{"input":{"prompt":"calm piano","duration":1}}' | jq -r .output | cut -d, -f2 | base64 -d > out.wav

import { LOAD_INPUTS } from '../inputs.js';
import { addInputOptions, optionValues } from './inputs.js';
import { Command, InvalidArgumentError } from 'commander';
import { createMusicGenServer } from '../server/app.js';
import { limitsFromEnv } from './gpu.js';
import { parseModels } from '../server/models.js';

const int = (name: string, min: number, max = Number.MAX_SAFE_INTEGER) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}]`);
  return n;
};
const positive = (name: string) => (v: string): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number`);
  return n;
};
const httpUrl = (v: string): string => {
  if (!/^https?:\/\//i.test(v) || !URL.canParse(v)) throw new InvalidArgumentError('--upload-url must be an http(s) URL');
  return v;
};

interface Flags {
  model?: string;
  models?: string;
  maxLoaded: number;
  adapter?: string;
  mbd?: string;
  demucs?: string;
  port: number;
  host: string;
  queue: number;
  maxBodyMb: number;
  headersTimeout: number;
  requestTimeout: number;
  bodyTimeout: number;
  maxDatasetMb: number;
  maxDuration: number;
  allowUrlInputs?: boolean;
  allowPrivateWebhooks?: boolean;
  uploadUrl?: string;
  stream?: boolean;
  trainings: boolean;
  cacheDir?: string;
  offline?: boolean;
}

export async function main(argv = process.argv): Promise<void> {
  const program = new Command()
    .name('serve')
    .description('Serve MusicGen over the Cog HTTP API (predictions, trainings) with a web page, in one process')
    .option('--model <dir|hub-id|name>', 'the one model: a folder in the transformers format, a hub id, or a short name (small, melody-large, …; then also model_version\'s one choice)')
    .option('--models <names|json>', 'the models offered as model_version (the first the default), each loaded on first use: names (stereo-melody-large, stereo-large, melody-large, large, melody, small, medium, encode-decode) separated by commas, or a JSON map of name → folder, hub id or {"model": …, "adapter": …}')
    .option('--max-loaded <n>', 'models kept on the GPU at once with --models; the least recently used is disposed', int('--max-loaded', 1), 1)
    .option('--adapter <file|dir>', 'a LoRA adapter applied to --model in memory (adapter_model.safetensors with adapter_config.json beside it)')
    .option('--port <n>', 'port to listen on', int('--port', 0, 65535), 5000)
    .option('--host <address>', 'address to listen on (0.0.0.0 for every interface)', '127.0.0.1')
    .option('--queue <n>', 'requests that may wait for the GPU; 0 answers 409 Conflict when busy, as Cog', int('--queue', 0), 0)
    .option('--max-body-mb <n>', 'largest request body (MiB), file inputs included', positive('--max-body-mb'), 64)
    .option('--headers-timeout <s>', 'longest time to receive a request\'s headers (seconds)', positive('--headers-timeout'), 60)
    .option('--request-timeout <s>', 'longest time to receive a whole request, body included (seconds; answers may take longer)', positive('--request-timeout'), 300)
    .option('--body-timeout <s>', 'longest pause within a request body (seconds)', positive('--body-timeout'), 30)
    .option('--max-dataset-mb <n>', 'largest training dataset, fetched or decompressed (MiB)', positive('--max-dataset-mb'), 2048)
    .option('--max-duration <s>', 'longest duration a prediction may ask for (seconds)', positive('--max-duration'), 300)
    .option('--allow-url-inputs', 'fetch http(s) URL file inputs (loopback and private addresses are still refused)')
    .option('--allow-private-webhooks', 'let webhook and output_file_prefix URLs reach loopback and private addresses (default: public only)')
    .option('--upload-url <url>', 'upload file outputs with PUT under this URL instead of returning data: URIs (as cog --upload-url)', httpUrl)
    .option('--stream', 'output Cog\'s iterator of files, growing while a prediction runs: short WAVs of the audio as it is made, then the whole normalised clip')
    .option('--no-trainings', 'do not serve /trainings')
    .option('--cache-dir <dir>', 'where hub downloads are kept (default: the Hugging Face cache)')
    .option('--offline', 'never touch the network for the model; use the hub cache only')
    .option('--mbd <path|url>', 'multi-band diffusion weights for multi_band_diffusion: true (default: facebook/multiband-diffusion/mbd_musicgen_32khz.th, fetched on first use)')
    .option('--demucs <path|url>', 'melody models: the Demucs package for the melody\'s stems (default: htdemucs 955717e8-8726e21a.th, downloaded on first use into torch.hub\'s cache)');
  const load = addInputOptions(program, LOAD_INPUTS);
  const f = program.parse(argv).opts<Flags>();
  if ((f.model === undefined) === (f.models === undefined)) throw new Error('give --model (one model) or --models (model_version choices), not both or neither');
  if (f.adapter && f.models) throw new Error('--adapter applies to --model; with --models give each its own in the JSON map ({"name": {"model": …, "adapter": …}})');
  if (f.models) parseModels(f.models);

  const app = createMusicGenServer({
    model: f.model, limits: limitsFromEnv(), ...optionValues(program, load), models: f.models, maxLoaded: f.maxLoaded, adapter: f.adapter, cacheDir: f.cacheDir, offline: f.offline, mbd: f.mbd, demucs: f.demucs, maxQueue: f.queue, maxBodyBytes: Math.round(f.maxBodyMb * 2 ** 20),
    maxDatasetBytes: Math.round(f.maxDatasetMb * 2 ** 20),
    headersTimeoutMs: f.headersTimeout * 1000, requestTimeoutMs: f.requestTimeout * 1000, bodyIdleTimeoutMs: f.bodyTimeout * 1000,
    maxDuration: f.maxDuration, allowUrlInputs: f.allowUrlInputs ?? false, allowPrivateWebhooks: f.allowPrivateWebhooks ?? false, uploadUrl: f.uploadUrl, stream: f.stream ?? false, trainings: f.trainings,
    onShutdown: () => process.exit(0),
  });
  const addr = await app.listen(f.port, f.host);
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  console.error(`listening on http://${shown}:${addr.port}/ (the page; Cog API: /predictions, /trainings, /health-check, /openapi.json)`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) process.exit(1);
    stopping = true;
    console.error(`${signal}: stopping (canceling running jobs)`);
    app.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  await app.ready;
  if (app.status === 'SETUP_FAILED') console.error('setup failed: the server keeps answering /health-check with SETUP_FAILED');
}

/** `musicgen serve` (src/cli/main.ts): runs the command and exits with its status. */
export function run(argv: string[] = process.argv): void {
  main(argv).catch((e: unknown) => {
    console.error(`serve: ${(e as Error).message}`);
    process.exit(1);
  });
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/'));
if (invokedDirectly) run();
