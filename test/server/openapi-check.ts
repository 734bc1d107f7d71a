// A focused structural check of an OpenAPI 3.0 document (the parts of the 3.0.3 specification a Cog document
// uses): the fixed fields of each object, their types, Schema Objects as JSON Schema draft 5 has them
// (`exclusiveMinimum` a boolean beside `minimum`, `type` a single name, `nullable`), local $refs that resolve,
// path parameters that match the templates, unique operationIds, and defaults and enums of the declared type.
// Returns the problems found, each with its JSON path; [] for a valid document.

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const ROOT = ['openapi', 'info', 'servers', 'paths', 'components', 'security', 'tags', 'externalDocs'];
const PATH_ITEM = ['$ref', 'summary', 'description', 'get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace', 'servers', 'parameters'];
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const OPERATION = ['tags', 'summary', 'description', 'externalDocs', 'operationId', 'parameters', 'requestBody', 'responses', 'callbacks', 'deprecated', 'security', 'servers'];
const PARAMETER = ['name', 'in', 'description', 'required', 'deprecated', 'allowEmptyValue', 'style', 'explode', 'allowReserved', 'schema', 'example', 'examples', 'content'];
const MEDIA_TYPE = ['schema', 'example', 'examples', 'encoding'];
const RESPONSE = ['description', 'headers', 'content', 'links'];
const SCHEMA = [
  'title', 'multipleOf', 'maximum', 'exclusiveMaximum', 'minimum', 'exclusiveMinimum', 'maxLength', 'minLength', 'pattern',
  'maxItems', 'minItems', 'uniqueItems', 'maxProperties', 'minProperties', 'required', 'enum', 'type', 'allOf', 'oneOf',
  'anyOf', 'not', 'items', 'properties', 'additionalProperties', 'description', 'format', 'default', 'nullable',
  'discriminator', 'readOnly', 'writeOnly', 'xml', 'externalDocs', 'example', 'deprecated',
];
const TYPES = ['string', 'number', 'integer', 'boolean', 'array', 'object'];

export function openApi30Problems(doc: unknown): string[] {
  const problems: string[] = [];
  const bad = (at: string, msg: string): void => { problems.push(`${at}: ${msg}`); };
  const fields = (o: Obj, allowed: string[], at: string): void => {
    for (const k of Object.keys(o)) if (!allowed.includes(k) && !k.startsWith('x-')) bad(`${at}.${k}`, 'not a field of this object in OpenAPI 3.0');
  };
  if (!isObj(doc)) return ['$: not an object'];
  fields(doc, ROOT, '$');
  if (typeof doc.openapi !== 'string' || !/^3\.0\.\d+$/.test(doc.openapi)) bad('$.openapi', `must be a 3.0.x version, is ${JSON.stringify(doc.openapi)}`);
  if (!isObj(doc.info) || typeof doc.info.title !== 'string' || typeof doc.info.version !== 'string') bad('$.info', 'needs string title and version');
  const schemas = isObj(doc.components) && isObj(doc.components.schemas) ? doc.components.schemas : {};

  const valueOfType = (v: unknown, s: Obj): boolean => {
    if (v === null) return s.nullable === true;
    switch (s.type) {
      case 'string': return typeof v === 'string';
      case 'number': return typeof v === 'number';
      case 'integer': return Number.isInteger(v);
      case 'boolean': return typeof v === 'boolean';
      case 'array': return Array.isArray(v);
      case 'object': return isObj(v);
      default: return true;
    }
  };

  const schema = (s: unknown, at: string): void => {
    if (!isObj(s)) return bad(at, 'a schema must be an object');
    if ('$ref' in s) {
      const ref = s.$ref;
      const m = typeof ref === 'string' ? /^#\/components\/schemas\/(.+)$/.exec(ref) : null;
      if (!m || !(m[1] in schemas)) bad(`${at}.$ref`, `does not resolve: ${String(ref)}`);
      return;
    }
    fields(s, SCHEMA, at);
    if (s.type !== undefined && (typeof s.type !== 'string' || !TYPES.includes(s.type))) bad(`${at}.type`, `must be one of ${TYPES.join(', ')} (a single name in 3.0), is ${JSON.stringify(s.type)}`);
    for (const k of ['exclusiveMinimum', 'exclusiveMaximum', 'nullable', 'uniqueItems', 'readOnly', 'writeOnly', 'deprecated']) {
      if (s[k] !== undefined && typeof s[k] !== 'boolean') bad(`${at}.${k}`, `must be a boolean in OpenAPI 3.0, is ${JSON.stringify(s[k])}`);
    }
    for (const k of ['minimum', 'maximum', 'multipleOf']) if (s[k] !== undefined && typeof s[k] !== 'number') bad(`${at}.${k}`, 'must be a number');
    for (const k of ['maxLength', 'minLength', 'maxItems', 'minItems', 'maxProperties', 'minProperties']) {
      if (s[k] !== undefined && !(Number.isInteger(s[k]) && (s[k] as number) >= 0)) bad(`${at}.${k}`, 'must be a non-negative integer');
    }
    if (s.exclusiveMinimum === true && s.minimum === undefined) bad(`${at}.exclusiveMinimum`, 'true without a minimum');
    if (s.exclusiveMaximum === true && s.maximum === undefined) bad(`${at}.exclusiveMaximum`, 'true without a maximum');
    for (const k of ['title', 'description', 'format', 'pattern']) if (s[k] !== undefined && typeof s[k] !== 'string') bad(`${at}.${k}`, 'must be a string');
    if (s.required !== undefined && (!Array.isArray(s.required) || s.required.length === 0 || !s.required.every((x) => typeof x === 'string'))) bad(`${at}.required`, 'must be a non-empty list of names');
    if (s.enum !== undefined) {
      if (!Array.isArray(s.enum) || s.enum.length === 0) bad(`${at}.enum`, 'must be a non-empty list');
      else s.enum.forEach((v, i) => { if (!valueOfType(v, s)) bad(`${at}.enum[${i}]`, `is not of type ${String(s.type)}`); });
    }
    if (s.default !== undefined && !valueOfType(s.default, s)) bad(`${at}.default`, `${JSON.stringify(s.default)} is not of type ${String(s.type)}${s.nullable ? ' (or null)' : ''}`);
    if (s.type === 'array' && s.items === undefined) bad(`${at}.items`, 'required when type is array');
    if (s.items !== undefined) schema(s.items, `${at}.items`);
    if (s.not !== undefined) schema(s.not, `${at}.not`);
    if (s.additionalProperties !== undefined && typeof s.additionalProperties !== 'boolean') schema(s.additionalProperties, `${at}.additionalProperties`);
    if (s.properties !== undefined) {
      if (!isObj(s.properties)) bad(`${at}.properties`, 'must be an object');
      else for (const [k, v] of Object.entries(s.properties)) schema(v, `${at}.properties.${k}`);
    }
    for (const k of ['allOf', 'oneOf', 'anyOf']) {
      if (s[k] === undefined) continue;
      if (!Array.isArray(s[k]) || (s[k] as unknown[]).length === 0) bad(`${at}.${k}`, 'must be a non-empty list');
      else (s[k] as unknown[]).forEach((x, i) => schema(x, `${at}.${k}[${i}]`));
    }
  };

  const content = (c: unknown, at: string): void => {
    if (!isObj(c)) return bad(at, 'must be a map of media types');
    for (const [type, media] of Object.entries(c)) {
      if (!isObj(media)) { bad(`${at}.${type}`, 'must be a Media Type Object'); continue; }
      fields(media, MEDIA_TYPE, `${at}.${type}`);
      if (media.schema !== undefined) schema(media.schema, `${at}.${type}.schema`);
    }
  };

  const operationIds = new Set<string>();
  if (!isObj(doc.paths)) bad('$.paths', 'required object');
  for (const [p, item] of Object.entries(isObj(doc.paths) ? doc.paths : {})) {
    const at = `$.paths.${p}`;
    if (!p.startsWith('/')) bad(at, 'a path must start with /');
    if (!isObj(item)) { bad(at, 'must be a Path Item Object'); continue; }
    fields(item, PATH_ITEM, at);
    const templated = [...p.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const method of METHODS) {
      const op = item[method];
      if (op === undefined) continue;
      const oat = `${at}.${method}`;
      if (!isObj(op)) { bad(oat, 'must be an Operation Object'); continue; }
      fields(op, OPERATION, oat);
      if (typeof op.operationId === 'string') {
        if (operationIds.has(op.operationId)) bad(`${oat}.operationId`, `${op.operationId} used twice`);
        operationIds.add(op.operationId);
      }
      const params = Array.isArray(op.parameters) ? op.parameters : [];
      if (op.parameters !== undefined && !Array.isArray(op.parameters)) bad(`${oat}.parameters`, 'must be a list');
      const inPath = new Set<string>();
      params.forEach((q: unknown, i) => {
        const qat = `${oat}.parameters[${i}]`;
        if (!isObj(q)) return bad(qat, 'must be a Parameter Object');
        fields(q, PARAMETER, qat);
        if (typeof q.name !== 'string') bad(`${qat}.name`, 'required string');
        if (!['query', 'header', 'path', 'cookie'].includes(String(q.in))) bad(`${qat}.in`, `must be query, header, path or cookie, is ${JSON.stringify(q.in)}`);
        if (q.in === 'path') {
          if (q.required !== true) bad(`${qat}.required`, 'must be true for a path parameter');
          if (!templated.includes(String(q.name))) bad(`${qat}.name`, `${String(q.name)} is not in the path template`);
          inPath.add(String(q.name));
        }
        if (q.schema !== undefined) schema(q.schema, `${qat}.schema`);
      });
      for (const name of templated) if (!inPath.has(name)) bad(oat, `path parameter {${name}} is not declared`);
      if (op.requestBody !== undefined) {
        if (!isObj(op.requestBody) || op.requestBody.content === undefined) bad(`${oat}.requestBody`, 'needs content');
        else content(op.requestBody.content, `${oat}.requestBody.content`);
      }
      if (!isObj(op.responses) || Object.keys(op.responses).length === 0) { bad(`${oat}.responses`, 'required, at least one'); continue; }
      for (const [code, r] of Object.entries(op.responses)) {
        const rat = `${oat}.responses.${code}`;
        if (code !== 'default' && !/^[1-5](\d\d|XX)$/.test(code)) bad(rat, 'not an HTTP status code');
        if (!isObj(r)) { bad(rat, 'must be a Response Object'); continue; }
        fields(r, RESPONSE, rat);
        if (typeof r.description !== 'string') bad(`${rat}.description`, 'required string');
        if (r.content !== undefined) content(r.content, `${rat}.content`);
      }
    }
  }
  for (const [name, s] of Object.entries(schemas)) {
    if (!/^[a-zA-Z0-9.\-_]+$/.test(name)) bad(`$.components.schemas.${name}`, 'name must match ^[a-zA-Z0-9.\\-_]+$');
    schema(s, `$.components.schemas.${name}`);
  }
  return problems;
}
