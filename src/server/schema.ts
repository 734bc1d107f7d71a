// The inputs of the predictor and the trainer, as Cog declares them (`Input(description=…, default=…, ge=…,
// choices=…)`), their validation with pydantic-style errors, and the OpenAPI document Cog serves at
// /openapi.json (shape copied from cog's pkg/schema/openapi_spec.go: Input / Output / PredictionRequest /
// PredictionResponse / Status / HTTPValidationError / ValidationError, and TrainingInput / TrainingOutput /
// TrainingRequest / TrainingResponse).
//
// The inputs themselves (names, types, defaults, ranges, choices, descriptions) are the tables of src/inputs.ts,
// shared with the library and the CLIs; this file turns them into Cog's fields.
//
// The predictor's inputs are those of the Cog MusicGen predictor (predict.py), with two widenings that old
// clients never notice: `duration`, `continuation_start` and `continuation_end` take fractions of a second
// (Cog: int), and `classifier_free_guidance` takes a number. `model_version` is an input when the server offers
// named models (`serve --models`, or `--model` with a short name): its choices are those models; a server of one
// unnamed model (`--model DIR`) drops it like any unknown input, with a log line (coglet strips unknown inputs "to
// match Replicate's historical API behavior"). `description` is accepted as the old name of `prompt`.

import { PREDICT_INPUTS, TRAIN_INPUTS, ENCODE_DECODE, byCog, type InputField } from '../inputs.js';

export type FieldType = 'string' | 'integer' | 'number' | 'boolean';

export interface Field {
  name: string;
  /** Old names accepted for this input. */
  aliases?: readonly string[];
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
  /** A value below the range that means "not given" (-1). */
  unset?: number;
  choices?: readonly string[];
}

export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
  type: string;
  ctx?: Record<string, unknown>;
}

export type InputValues = Record<string, string | number | boolean | null>;

/** The Cog field of an input of src/inputs.ts. */
function cogField(f: InputField): Field {
  if (f.type === 'function') throw new Error(`${f.option}: a callback is no Cog input`);
  const out: Field = { name: f.cog!, type: f.type === 'file' ? 'string' : f.type, description: f.description };
  if (f.type === 'file') out.format = 'uri';
  if (f.cogAliases) out.aliases = f.cogAliases;
  for (const k of ['default', 'nullable', 'required', 'minimum', 'maximum', 'exclusiveMinimum', 'unset', 'choices'] as const) {
    if (f[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = f[k];
  }
  return out;
}

/** Library option values (for src/pipeline.ts, src/train/loop.ts) of validated Cog values; null = not given. */
export function toOptions(table: readonly InputField[], values: InputValues): Record<string, string | number | boolean | undefined> {
  const out: Record<string, string | number | boolean | undefined> = {};
  for (const f of table) {
    if (f.cog && f.option && f.type !== 'file') out[f.option] = values[f.cog] ?? undefined;
  }
  return out;
}

/** The Cog name of a library option (for errors the library raises). */
export function cogName(table: readonly InputField[], option: string): string {
  return table.find((f) => f.option === option)?.cog ?? option;
}

// ---------------------------------------------------------------------------------------------------------------
// the predictor

/** What is known of a model before a request runs on it. */
export interface ModelFacts {
  /** Whether the model follows a melody (`input_audio` without `continuation`). */
  isMelody: boolean;
  /** Tokens the model's tokenizer makes of a prompt (checked against the prompt's cap). */
  countTokens?: (prompt: string) => number;
}

export interface PredictorLimits extends Partial<ModelFacts> {
  /** Longest `duration` accepted (seconds). */
  maxDuration: number;
  /** `model_version`'s choices, the first the default; absent: one unnamed model, and no such input. */
  modelVersions?: readonly string[];
  /**
   * The facts of the model a model_version names, when it is loaded (else null: the predictor checks once it is).
   * Without model versions, `isMelody` and `countTokens` are the one model's.
   */
  facts?: (version: string) => ModelFacts | null;
}

export function predictorFields(limits: PredictorLimits): Field[] {
  const versions = limits.modelVersions;
  return PREDICT_INPUTS.filter((f) => f.cog && (f.cog !== 'model_version' || versions?.length)).map((f) => {
    const field = cogField(f);
    if (field.name === 'model_version') {
      field.choices = versions;
      field.default = versions![0];
      if (!versions!.includes(ENCODE_DECODE)) field.description = field.description.replace(/ If set to 'encode-decode'.*$/, '');
    }
    if (field.name === 'duration') field.maximum = limits.maxDuration;
    if (field.name === 'input_audio') {
      const melody = limits.isMelody ?? true;
      field.description = field.description.replace(/Otherwise, .*$/, melody ? "Otherwise, the generated music will mimic the audio file's melody." : 'This model is text-only: it needs `continuation` to use the file.') +
        (versions ? ' Following a melody needs a melody model.' : '') + ' Send it as a data: URI.';
    }
    if (field.name === 'prompt') field.description += ` At most ${PROMPT.maxTokens} tokens.`;
    return field;
  });
}

const PROMPT = byCog(PREDICT_INPUTS, 'prompt')!;

/** Rules between predictor inputs that the schema cannot say; the field named is the one to fix. */
export function predictorCrossChecks(v: InputValues, limits: PredictorLimits): ValidationIssue[] {
  const issue = (field: string, msg: string): ValidationIssue => ({ loc: ['body', 'input', field], msg, type: 'value_error' });
  const out: ValidationIssue[] = [];
  const prompt = typeof v.prompt === 'string' ? v.prompt : '';
  const version = limits.modelVersions && typeof v.model_version === 'string' ? v.model_version : null;
  if (version === ENCODE_DECODE) {
    if (!v.input_audio) out.push(issue('input_audio', `model_version ${ENCODE_DECODE} encodes and decodes input_audio: it is required`));
    return out;
  }
  const facts: Partial<ModelFacts> = version === null ? limits : limits.facts?.(version) ?? {};
  if (!prompt.trim() && !v.input_audio) out.push(issue('prompt', 'a prompt or input_audio is required'));
  if (v.continuation && !v.input_audio) out.push(issue('continuation', 'needs input_audio to continue'));
  if (v.input_audio && !v.continuation && facts.isMelody === false) {
    out.push(issue('input_audio', 'this is a text-only model: melody conditioning needs a melody model; set continuation to continue the clip instead'));
  }
  const end = v.continuation_end;
  if (typeof end === 'number' && end !== -1 && typeof v.continuation_start === 'number' && v.continuation_start > end) {
    out.push(issue('continuation_start', `(${v.continuation_start} s) is after continuation_end (${end} s)`));
  }
  const cap = PROMPT.maxTokens;
  if (cap !== undefined && facts.countTokens && prompt) {
    const n = facts.countTokens(prompt);
    if (n > cap) out.push({ loc: ['body', 'input', 'prompt'], msg: `is ${n} tokens long; the most is ${cap}`, type: 'value_error.any_str.max_length', ctx: { limit_value: cap } });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// the trainer (the old Cog MusicGen trainer's inputs, and those of src/train/loop.ts)

export function trainerFields(): Field[] {
  return TRAIN_INPUTS.filter((f) => f.cog).map(cogField);
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
      if (f.unset !== undefined && n === f.unset) return { value: n };
      if (f.unset !== undefined && f.minimum !== undefined && n < f.minimum) {
        // below the unset value: Cog's ge=-1; between it and the range: our finer rule
        const msg = n < f.unset ? `ensure this value is greater than or equal to ${f.unset}` : `ensure this value is greater than or equal to ${f.minimum} (or ${f.unset} for none)`;
        return { issue: { msg, type: 'value_error.number.not_ge', ctx: { limit_value: Math.min(f.unset, f.minimum) } } };
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
  const known = new Set(fields.flatMap((f) => [f.name, ...(f.aliases ?? [])]));
  const stripped = Object.keys(input).filter((k) => !known.has(k));
  for (const f of fields) {
    // an old name counts when the current one is not given
    const alias = input[f.name] === undefined || input[f.name] === null ? f.aliases?.find((a) => input[a] !== undefined && input[a] !== null) : undefined;
    const name = alias ?? f.name;
    const raw = input[name];
    if (raw === undefined || raw === null) {
      if (f.required) issues.push({ loc: ['body', 'input', f.name], msg: 'field required', type: 'value_error.missing' });
      values[f.name] = f.default ?? null;
      continue;
    }
    given[name] = raw;
    const r = coerce(f, raw);
    if (r.issue) issues.push({ loc: ['body', 'input', name], ...r.issue });
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
      if (f.minimum !== undefined) p.minimum = f.unset !== undefined ? Math.min(f.unset, f.minimum) : f.minimum;
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

/**
 * The OpenAPI 3.0.2 document of the predictor (and the trainer when `trainer` is given); `streamOutput`: the
 * output is an iterator of files (`serve --stream`).
 */
export function openApiDocument(opts: { version: string; title?: string; predictor: readonly Field[]; trainer?: readonly Field[]; streamOutput?: boolean }): Record<string, unknown> {
  const enums: Record<string, unknown> = {};
  const file = { type: 'string', format: 'uri' };
  const schemas: Record<string, unknown> = {
    Input: inputSchema(opts.predictor, 'Input', enums),
    // `serve --stream`: a predictor returning Cog's Iterator[Path] (python/cog/_adt.py, OutputKind.ITERATOR)
    Output: opts.streamOutput ? { title: 'Output', type: 'array', items: file, 'x-cog-array-type': 'iterator' } : { title: 'Output', ...file },
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
