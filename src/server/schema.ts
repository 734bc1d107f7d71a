// The inputs of the predictor and the trainer, as Cog declares them (`Input(description=…, default=…, ge=…,
// choices=…)`), their validation with pydantic-style errors, and the OpenAPI document Cog serves at
// /openapi.json (shape copied from cog's pkg/schema/openapi_spec.go: Input / Output / PredictionRequest /
// PredictionResponse / Status / HTTPValidationError / ValidationError, and TrainingInput / TrainingOutput /
// TrainingRequest / TrainingResponse).
//
// The predictor's inputs are those of the Cog MusicGen predictor (predict.py), with two widenings that old
// clients never notice: `duration`, `continuation_start` and `continuation_end` take fractions of a second
// (Cog: int), and `classifier_free_guidance` takes a number. `model_version` and `multi_band_diffusion` are not
// inputs: this server serves one model and decodes with EnCodec; like any unknown input they are dropped with a
// log line (coglet strips unknown inputs "to match Replicate's historical API behavior").

export type FieldType = 'string' | 'integer' | 'number' | 'boolean';

export interface Field {
  name: string;
  type: FieldType;
  description: string;
  /** `uri`: a file, sent as a data: URI (or an http(s) URL when the operator allows it). */
  format?: 'uri';
  default?: string | number | boolean;
  /** null / absent is allowed and means "not given" (Python `default=None`). */
  nullable?: boolean;
  required?: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  choices?: readonly string[];
}

export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
  type: string;
  ctx?: Record<string, unknown>;
}

export type InputValues = Record<string, string | number | boolean | null>;

// ---------------------------------------------------------------------------------------------------------------
// the predictor

export interface PredictorLimits {
  /** Longest `duration` accepted (seconds). */
  maxDuration: number;
  /** Whether the model follows a melody (`input_audio` without `continuation`). */
  isMelody: boolean;
}

export function predictorFields(limits: PredictorLimits): Field[] {
  return [
    { name: 'prompt', type: 'string', nullable: true, description: 'A description of the music you want to generate.' },
    {
      name: 'input_audio', type: 'string', format: 'uri', nullable: true,
      description: 'An audio file that will influence the generated music. If `continuation` is `True`, the generated music will be a continuation of the audio file. ' +
        (limits.isMelody ? "Otherwise, the generated music will mimic the audio file's melody." : 'This model is text-only: it needs `continuation` to use the file.') +
        ' Send it as a data: URI.',
    },
    { name: 'duration', type: 'number', default: 8, exclusiveMinimum: 0, maximum: limits.maxDuration, description: 'Duration of the generated audio in seconds.' },
    {
      name: 'continuation', type: 'boolean', default: false,
      description: "If `True`, generated music will continue from `input_audio`. Otherwise, generated music will mimic `input_audio`'s melody.",
    },
    { name: 'continuation_start', type: 'number', default: 0, minimum: 0, description: 'Start time of the audio file to use for continuation.' },
    {
      name: 'continuation_end', type: 'number', nullable: true, minimum: -1,
      description: 'End time of the audio file to use for continuation. If -1 or None, will default to the end of the audio clip.',
    },
    {
      name: 'normalization_strategy', type: 'string', default: 'loudness', choices: ['loudness', 'clip', 'peak', 'rms', 'none'],
      description: 'Strategy for normalizing audio.',
    },
    { name: 'top_k', type: 'integer', default: 250, minimum: 0, description: 'Reduces sampling to the k most likely tokens.' },
    {
      name: 'top_p', type: 'number', default: 0, minimum: 0, maximum: 1,
      description: 'Reduces sampling to tokens with cumulative probability of p. When set to  `0` (default), top_k sampling is used.',
    },
    {
      name: 'temperature', type: 'number', default: 1, minimum: 0, maximum: 100,
      description: "Controls the 'conservativeness' of the sampling process. Higher temperature means more diversity.",
    },
    {
      name: 'classifier_free_guidance', type: 'number', default: 3, minimum: 0, maximum: 100,
      description: 'Increases the influence of inputs on the output. Higher values produce lower-varience outputs that adhere more closely to inputs.',
    },
    { name: 'output_format', type: 'string', default: 'wav', choices: ['wav', 'mp3'], description: 'Output format for generated audio.' },
    {
      name: 'seed', type: 'integer', nullable: true, minimum: -1, maximum: Number.MAX_SAFE_INTEGER,
      description: 'Seed for random number generator. If None or -1, a random seed will be used.',
    },
  ];
}

/** Rules between predictor inputs that the schema cannot say; the field named is the one to fix. */
export function predictorCrossChecks(v: InputValues, limits: PredictorLimits): ValidationIssue[] {
  const issue = (field: string, msg: string): ValidationIssue => ({ loc: ['body', 'input', field], msg, type: 'value_error' });
  const out: ValidationIssue[] = [];
  const prompt = typeof v.prompt === 'string' ? v.prompt : '';
  if (!prompt.trim() && !v.input_audio) out.push(issue('prompt', 'a prompt or input_audio is required'));
  if (v.continuation && !v.input_audio) out.push(issue('continuation', 'needs input_audio to continue'));
  if (v.input_audio && !v.continuation && !limits.isMelody) {
    out.push(issue('input_audio', 'this is a text-only model: melody conditioning needs a melody model; set continuation to continue the clip instead'));
  }
  const end = v.continuation_end;
  if (typeof end === 'number' && end !== -1 && end < 0) {
    out.push({ loc: ['body', 'input', 'continuation_end'], msg: 'ensure this value is greater than or equal to 0 (or -1 for the end of the clip)', type: 'value_error.number.not_ge', ctx: { limit_value: 0 } });
  }
  if (typeof end === 'number' && end !== -1 && typeof v.continuation_start === 'number' && v.continuation_start > end) {
    out.push(issue('continuation_start', `(${v.continuation_start} s) is after continuation_end (${end} s)`));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// the trainer (the old Cog MusicGen trainer's inputs, and those of src/train/loop.ts)

export function trainerFields(): Field[] {
  return [
    {
      name: 'dataset_path', type: 'string', format: 'uri', required: true,
      description: 'A tarball (.tar, .tar.gz) of audio files (wav, mp3, flac, ogg), each with its caption in a .txt file of the same name. Send it as a data: URI.',
    },
    { name: 'epochs', type: 'integer', default: 5, minimum: 1, maximum: 10000, description: 'Number of passes over the dataset.' },
    { name: 'lr', type: 'number', default: 1e-4, exclusiveMinimum: 0, maximum: 1, description: 'Peak learning rate (AdamW, betas 0.9/0.95, weight decay 0.1).' },
    { name: 'batch_size', type: 'integer', default: 1, minimum: 1, maximum: 256, description: 'Chunks per micro-batch.' },
    { name: 'grad_accum', type: 'integer', default: 1, minimum: 1, maximum: 1024, description: 'Micro-batches per optimiser step.' },
    { name: 'warmup', type: 'integer', default: 0, minimum: 0, description: 'Linear learning-rate warmup, in optimiser steps.' },
    { name: 'schedule', type: 'string', default: 'constant', choices: ['constant', 'cosine'], description: 'Learning rate after the warmup.' },
    { name: 'cond_dropout', type: 'number', default: 0.2, minimum: 0, maximum: 1, description: "Probability of dropping a chunk's text (and melody) conditioning, so that classifier-free guidance keeps working." },
    { name: 'lora_rank', type: 'integer', default: 0, minimum: 0, maximum: 1024, description: 'Train rank-r LoRA adapters instead of the full weights (0: full fine-tuning of the LM and the conditioning projections).' },
    { name: 'lora_alpha', type: 'number', nullable: true, exclusiveMinimum: 0, description: 'LoRA alpha (scale alpha / rank; default: the rank).' },
    { name: 'chunk_seconds', type: 'number', default: 30, exclusiveMinimum: 0, maximum: 30, description: 'Longest training chunk, seconds (clips are cut into chunks of this length).' },
    { name: 'seed', type: 'integer', nullable: true, minimum: -1, maximum: 2 ** 31 - 1, description: 'Seed of the shuffles, dropout draws and LoRA init. If None or -1, a random seed is used.' },
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// validation

const isPlainObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function coerce(f: Field, raw: unknown): { value?: string | number | boolean; issue?: Omit<ValidationIssue, 'loc'> } {
  switch (f.type) {
    case 'boolean': {
      if (typeof raw === 'boolean') return { value: raw };
      if (raw === 0 || raw === 1) return { value: raw === 1 };
      if (typeof raw === 'string' && /^(true|false|yes|no|on|off|1|0)$/i.test(raw.trim())) return { value: /^(true|yes|on|1)$/i.test(raw.trim()) };
      return { issue: { msg: 'value could not be parsed to a boolean', type: 'type_error.bool' } };
    }
    case 'integer':
    case 'number': {
      let n: number | undefined;
      if (typeof raw === 'number') n = raw;
      else if (typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw))) n = Number(raw);
      if (n === undefined || !Number.isFinite(n)) {
        return f.type === 'integer'
          ? { issue: { msg: 'value is not a valid integer', type: 'type_error.integer' } }
          : { issue: { msg: 'value is not a valid float', type: 'type_error.float' } };
      }
      if (f.type === 'integer' && !Number.isInteger(n)) return { issue: { msg: 'value is not a valid integer', type: 'type_error.integer' } };
      if (f.exclusiveMinimum !== undefined && !(n > f.exclusiveMinimum)) {
        return { issue: { msg: `ensure this value is greater than ${f.exclusiveMinimum}`, type: 'value_error.number.not_gt', ctx: { limit_value: f.exclusiveMinimum } } };
      }
      if (f.minimum !== undefined && n < f.minimum) {
        return { issue: { msg: `ensure this value is greater than or equal to ${f.minimum}`, type: 'value_error.number.not_ge', ctx: { limit_value: f.minimum } } };
      }
      if (f.maximum !== undefined && n > f.maximum) {
        return { issue: { msg: `ensure this value is less than or equal to ${f.maximum}`, type: 'value_error.number.not_le', ctx: { limit_value: f.maximum } } };
      }
      return { value: n };
    }
    case 'string': {
      if (typeof raw !== 'string') return { issue: { msg: 'str type expected', type: 'type_error.str' } };
      if (f.choices && !f.choices.includes(raw)) {
        return {
          issue: {
            msg: `value is not a valid enumeration member; permitted: ${f.choices.map((c) => `'${c}'`).join(', ')}`,
            type: 'type_error.enum', ctx: { enum_values: [...f.choices] },
          },
        };
      }
      if (f.format === 'uri' && !/^(data:|https?:\/\/)/i.test(raw)) {
        return { issue: { msg: 'must be a data: URI (or an http(s) URL where the server allows URL inputs)', type: 'value_error.url.scheme' } };
      }
      return { value: raw };
    }
  }
}

/**
 * Checks `input` against `fields`: values with defaults filled in, the issues (pydantic style, `loc` =
 * ["body", "input", field]) and the names of unknown inputs (dropped, as coglet does).
 */
export function validateInput(fields: readonly Field[], input: unknown): { values: InputValues; given: Record<string, unknown>; issues: ValidationIssue[]; stripped: string[] } {
  const issues: ValidationIssue[] = [];
  const values: InputValues = {};
  const given: Record<string, unknown> = {};
  if (input === undefined || input === null) input = {};
  if (!isPlainObject(input)) {
    return { values, given, issues: [{ loc: ['body', 'input'], msg: 'value is not a valid dict', type: 'type_error.dict' }], stripped: [] };
  }
  const known = new Set(fields.map((f) => f.name));
  const stripped = Object.keys(input).filter((k) => !known.has(k));
  for (const f of fields) {
    const raw = input[f.name];
    if (raw === undefined || raw === null) {
      if (f.required) issues.push({ loc: ['body', 'input', f.name], msg: 'field required', type: 'value_error.missing' });
      values[f.name] = f.default ?? null;
      continue;
    }
    given[f.name] = raw;
    const r = coerce(f, raw);
    if (r.issue) issues.push({ loc: ['body', 'input', f.name], ...r.issue });
    else values[f.name] = r.value!;
  }
  return { values, given, issues, stripped };
}

// ---------------------------------------------------------------------------------------------------------------
// OpenAPI (Cog's document shape)

function title(name: string): string {
  return name.split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(' ');
}

function inputSchema(fields: readonly Field[], key: string, enums: Record<string, unknown>): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  fields.forEach((f, order) => {
    const p: Record<string, unknown> = {};
    if (f.choices) {
      enums[f.name] = { title: f.name, description: 'An enumeration.', enum: [...f.choices], type: f.type };
      p.allOf = [{ $ref: `#/components/schemas/${f.name}` }];
    } else {
      p.title = title(f.name);
      p.type = f.type;
      if (f.format) p.format = f.format;
      if (f.minimum !== undefined) p.minimum = f.minimum;
      if (f.maximum !== undefined) p.maximum = f.maximum;
      // OpenAPI 3.0 (JSON Schema draft 5): the bound is `minimum`, `exclusiveMinimum` a boolean
      if (f.exclusiveMinimum !== undefined) Object.assign(p, { minimum: f.exclusiveMinimum, exclusiveMinimum: true });
    }
    if (f.nullable) p.nullable = true;
    if (f.default !== undefined) p.default = f.default;
    p.description = f.description;
    p['x-order'] = order;
    properties[f.name] = p;
    if (f.required) required.push(f.name);
  });
  const schema: Record<string, unknown> = { title: key, type: 'object', properties };
  if (required.length) schema.required = required;
  return schema;
}

const VALIDATION_SCHEMAS = {
  HTTPValidationError: {
    title: 'HTTPValidationError', type: 'object',
    properties: { detail: { title: 'Detail', type: 'array', items: { $ref: '#/components/schemas/ValidationError' } } },
  },
  ValidationError: {
    title: 'ValidationError', required: ['loc', 'msg', 'type'], type: 'object',
    properties: {
      loc: { title: 'Location', type: 'array', items: { anyOf: [{ type: 'string' }, { type: 'integer' }] } },
      msg: { title: 'Message', type: 'string' },
      type: { title: 'Error Type', type: 'string' },
    },
  },
};

function requestSchema(name: string, inputKey: string): Record<string, unknown> {
  return {
    title: name, type: 'object',
    properties: {
      id: { title: 'Id', type: 'string' },
      input: { $ref: `#/components/schemas/${inputKey}` },
      webhook: { title: 'Webhook', type: 'string', format: 'uri', maxLength: 65536, minLength: 1 },
      webhook_events_filter: {
        type: 'array', items: { $ref: '#/components/schemas/WebhookEvent' }, default: ['start', 'output', 'logs', 'completed'],
      },
      output_file_prefix: { title: 'Output File Prefix', type: 'string' },
    },
  };
}

function responseSchema(name: string, inputKey: string, outputKey: string): Record<string, unknown> {
  return {
    title: name, type: 'object',
    properties: {
      input: { $ref: `#/components/schemas/${inputKey}` },
      output: { $ref: `#/components/schemas/${outputKey}` },
      id: { title: 'Id', type: 'string' },
      version: { title: 'Version', type: 'string' },
      created_at: { title: 'Created At', type: 'string', format: 'date-time' },
      started_at: { title: 'Started At', type: 'string', format: 'date-time' },
      completed_at: { title: 'Completed At', type: 'string', format: 'date-time' },
      status: { $ref: '#/components/schemas/Status' },
      error: { title: 'Error', type: 'string' },
      logs: { title: 'Logs', type: 'string', default: '' },
      metrics: { title: 'Metrics', type: 'object' },
    },
  };
}

function endpoint(summary: string, description: string, operationId: string, requestRef: string, responseRef: string): Record<string, unknown> {
  const validation = { description: 'Validation Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/HTTPValidationError' } } } };
  return {
    summary, description, operationId,
    parameters: [{ in: 'header', name: 'prefer', required: false, schema: { title: 'Prefer', type: 'string' } }],
    requestBody: { content: { 'application/json': { schema: { $ref: requestRef } } } },
    responses: {
      200: { description: 'Successful Response', content: { 'application/json': { schema: { $ref: responseRef } } } },
      422: validation,
    },
  };
}

function cancelEndpoint(param: string, operationId: string): Record<string, unknown> {
  return {
    post: {
      summary: 'Cancel', operationId,
      parameters: [{ required: true, schema: { title: title(param), type: 'string' }, name: param, in: 'path' }],
      responses: {
        200: { description: 'Successful Response', content: { 'application/json': { schema: {} } } },
        422: { description: 'Validation Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/HTTPValidationError' } } } },
      },
    },
  };
}

const simpleGet = (summary: string, operationId: string): Record<string, unknown> => ({
  get: { summary, operationId, responses: { 200: { description: 'Successful Response', content: { 'application/json': { schema: {} } } } } },
});

/** The OpenAPI 3.0.2 document of the predictor (and the trainer when `training` is given). */
export function openApiDocument(opts: { version: string; title?: string; predictor: readonly Field[]; trainer?: readonly Field[] }): Record<string, unknown> {
  const enums: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = {
    Input: inputSchema(opts.predictor, 'Input', enums),
    Output: { title: 'Output', type: 'string', format: 'uri' },
  };
  const paths: Record<string, unknown> = {
    '/': simpleGet('Root', 'root__get'),
    '/health-check': simpleGet('Healthcheck', 'healthcheck_health_check_get'),
    '/shutdown': { post: simpleGet('Start Shutdown', 'start_shutdown_shutdown_post').get },
    '/predictions': {
      post: {
        ...endpoint('Predict', 'Run a single prediction on the model', 'predict_predictions_post', '#/components/schemas/PredictionRequest', '#/components/schemas/PredictionResponse'),
        'x-cog-streaming': true,
      },
    },
    '/predictions/{prediction_id}': {
      put: {
        ...endpoint('Predict Idempotent', 'Run a single prediction on the model (idempotent).', 'predict_idempotent_predictions__prediction_id__put', '#/components/schemas/PredictionRequest', '#/components/schemas/PredictionResponse'),
        parameters: [
          { required: true, schema: { title: 'Prediction ID', type: 'string' }, name: 'prediction_id', in: 'path' },
          { in: 'header', name: 'prefer', required: false, schema: { title: 'Prefer', type: 'string' } },
        ],
      },
    },
    '/predictions/{prediction_id}/cancel': cancelEndpoint('prediction_id', 'cancel_predictions__prediction_id__cancel_post'),
  };
  if (opts.trainer) {
    schemas.TrainingInput = inputSchema(opts.trainer, 'TrainingInput', enums);
    schemas.TrainingOutput = {
      title: 'TrainingOutput', type: 'object', required: ['weights'],
      properties: { weights: { title: 'Weights', type: 'string', format: 'uri' } },
    };
  }
  Object.assign(schemas, enums);
  schemas.PredictionRequest = requestSchema('PredictionRequest', 'Input');
  schemas.PredictionResponse = responseSchema('PredictionResponse', 'Input', 'Output');
  if (opts.trainer) {
    schemas.TrainingRequest = requestSchema('TrainingRequest', 'TrainingInput');
    schemas.TrainingResponse = responseSchema('TrainingResponse', 'TrainingInput', 'TrainingOutput');
    paths['/trainings'] = { post: endpoint('Train', 'Run a single training on the model', 'train_trainings_post', '#/components/schemas/TrainingRequest', '#/components/schemas/TrainingResponse') };
    paths['/trainings/{training_id}'] = {
      put: {
        ...endpoint('Train Idempotent', 'Run a single training on the model (idempotent).', 'train_idempotent_trainings__training_id__put', '#/components/schemas/TrainingRequest', '#/components/schemas/TrainingResponse'),
        parameters: [
          { required: true, schema: { title: 'Training ID', type: 'string' }, name: 'training_id', in: 'path' },
          { in: 'header', name: 'prefer', required: false, schema: { title: 'Prefer', type: 'string' } },
        ],
      },
    };
    paths['/trainings/{training_id}/cancel'] = cancelEndpoint('training_id', 'cancel_trainings__training_id__cancel_post');
  }
  schemas.Status = {
    title: 'Status', description: 'An enumeration.', enum: ['starting', 'processing', 'succeeded', 'canceled', 'failed'], type: 'string',
  };
  schemas.WebhookEvent = { title: 'WebhookEvent', description: 'An enumeration.', enum: ['start', 'output', 'logs', 'completed'], type: 'string' };
  Object.assign(schemas, VALIDATION_SCHEMAS);
  return {
    openapi: '3.0.2',
    info: { title: opts.title ?? 'Cog', version: opts.version },
    paths,
    components: { schemas },
  };
}
