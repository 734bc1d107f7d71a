// A restricted unpickler: Python's pickle virtual machine (https://github.com/python/cpython/blob/main/Lib/pickle.py,
// opcodes of protocols 0-5) rebuilt over plain JavaScript values. It never runs anything the file names: a GLOBAL
// only records the name (`PyGlobal`), and REDUCE may call nothing but the few JavaScript functions the caller allows
// (`callables`, keyed "module.name"); every other call, NEWOBJ, INST/OBJ or BUILD is refused with an error naming
// the global. That is enough for what PyTorch checkpoints hold (dicts, lists, tuples, strings, numbers,
// OrderedDict, tensors rebuilt from storages) and nothing a hostile file could use.
//
// Platform-neutral (no Node built-ins): runs in Node and in browsers.

/** A Python global recorded by name (a class reference such as a Demucs package's `klass`); never imported. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  /** "module.name", the key of `callables`. */
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A Python dict (or OrderedDict), in insertion order. `attrs` holds what BUILD set (an OrderedDict's `_metadata`). */
export class PyDict extends Map<PickleValue, PickleValue> {
  attrs: PickleValue = null;
  constructor(readonly className = 'dict') {
    super();
  }
}

/** A `fractions.Fraction`, kept exact (Demucs packages may store their segment length as one). */
export class PyFraction {
  constructor(readonly numerator: bigint, readonly denominator: bigint) {}
  valueOf(): number {
    return Number(this.numerator) / Number(this.denominator);
  }
}

/**
 * An instance of a class the caller chose to keep as inert data (`UnpickleOptions.inert`): its class, constructor
 * arguments and pickled state, recorded without creating anything (the Cog trainer's omegaconf training config).
 */
export class PyObject {
  state: PickleValue = null;
  constructor(readonly cls: PyGlobal, readonly args: readonly PickleValue[]) {}
}

/**
 * What unpickling yields. Lists are arrays; tuples are frozen arrays (`isTuple`); Python ints are numbers, or
 * bigints beyond 2^53; bytes are Uint8Arrays. Callers' callables and persistent loads may add their own objects.
 */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | PyDict
  | PyGlobal
  | PyFraction
  | PyObject
  | object;

export function isTuple(v: unknown): v is readonly PickleValue[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

export type PickleCallable = (args: readonly PickleValue[]) => PickleValue;

export interface UnpickleOptions {
  /** Where the bytes come from, for error messages. */
  label?: string;
  /** Functions REDUCE may call besides the built-in few, keyed "module.name". */
  callables?: Readonly<Record<string, PickleCallable>>;
  /**
   * Classes whose instances (NEWOBJ, REDUCE) are kept as inert PyObjects instead of being refused, by "module.name".
   * Nothing is constructed either way; this only decides between data and an error.
   */
  inert?: (qualname: string) => boolean;
  /** Resolves BINPERSID / PERSID ids (PyTorch's storages). Without it, a persistent id is an error. */
  persistentLoad?: (pid: PickleValue) => PickleValue;
}

/** A malformed or refused pickle. */
export class UnpicklingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnpicklingError';
  }
}

/** The data ended inside the pickle: more bytes are needed (callers reading a prefix retry with a longer one). */
export class PickleTruncatedError extends UnpicklingError {
  constructor(label: string, readonly needed: number) {
    super(`${label}: the pickle is truncated (needs ${needed} bytes)`);
    this.name = 'PickleTruncatedError';
  }
}

function tuple(items: PickleValue[]): readonly PickleValue[] {
  return Object.freeze(items);
}

/** Python 2 module names that protocol-2 pickles use for builtins (pickle's fix_imports). */
const PY2_MODULES: Readonly<Record<string, string>> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

function fraction(args: readonly PickleValue[]): PyFraction {
  // Python < 3.12 reduces a Fraction to (str(self),); later versions to (numerator, denominator).
  const toInt = (v: PickleValue) => {
    if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
    if (typeof v === 'bigint') return v;
    throw new UnpicklingError(`fractions.Fraction: expected integers, got ${describe(v)}`);
  };
  if (args.length === 1 && typeof args[0] === 'string') {
    const m = /^\s*(-?\d+)(?:\s*\/\s*(\d+))?\s*$/.exec(args[0]);
    if (!m) throw new UnpicklingError(`fractions.Fraction: cannot read "${args[0]}"`);
    return new PyFraction(BigInt(m[1]!), BigInt(m[2] ?? '1'));
  }
  if (args.length === 2) return new PyFraction(toInt(args[0]!), toInt(args[1]!));
  throw new UnpicklingError(`fractions.Fraction: unexpected arguments (${args.map(describe).join(', ')})`);
}

/** Callables every unpickle allows: they build plain data and nothing else. */
const BUILTIN_CALLABLES: Readonly<Record<string, PickleCallable>> = {
  'collections.OrderedDict': (args) => {
    if (args.length !== 0) throw new UnpicklingError('collections.OrderedDict: only the empty constructor is supported');
    return new PyDict('collections.OrderedDict');
  },
  // omegaconf's node metadata holds a `resolver_cache = defaultdict(dict)`: kept as a plain dict (the factory is
  // recorded only by name, never called).
  'collections.defaultdict': (args) => {
    if (args.length > 1 || (args.length === 1 && args[0] !== null && !(args[0] instanceof PyGlobal))) {
      throw new UnpicklingError(`collections.defaultdict: only a named factory is supported, got (${args.map(describe).join(', ')})`);
    }
    return new PyDict('collections.defaultdict');
  },
  // Protocol 2 writes bytes as _codecs.encode(text, 'latin1').
  '_codecs.encode': (args) => {
    const [text, enc] = args;
    if (typeof text !== 'string' || (enc !== 'latin1' && enc !== 'latin-1')) {
      throw new UnpicklingError(`_codecs.encode: only (str, 'latin1') is supported, got (${args.map(describe).join(', ')})`);
    }
    return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
  },
  'fractions.Fraction': fraction,
};

/** A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof PyGlobal) return `<global ${v.qualname}>`;
  if (v instanceof PyDict) return `${v.className} of ${v.size} items`;
  if (v instanceof PyObject) return `<${v.cls.qualname} object>`;
  if (v instanceof Uint8Array) return `bytes of length ${v.length}`;
  if (isTuple(v)) return `tuple of ${v.length}`;
  if (Array.isArray(v)) return `list of ${v.length}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'object';
  return String(v);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes as code points 0-255 (TextDecoder's "latin1" is windows-1252, which differs at 0x80-0x9f). */
function latin1(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
  return s;
}

/**
 * Reads one pickle from `bytes` starting at `start`. Returns the value and the offset just past its STOP opcode
 * (PyTorch's legacy format stores several pickles back to back).
 */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions = {}, start = 0): { value: PickleValue; end: number } {
  const label = opts.label ?? 'pickle';
  const fail = (msg: string): never => {
    throw new UnpicklingError(`${label}: ${msg}`);
  };
  const callables = { ...BUILTIN_CALLABLES, ...opts.callables };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = start;
  const stack: PickleValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PickleValue>();

  const need = (n: number): number => {
    if (pos + n > bytes.length) throw new PickleTruncatedError(label, pos + n);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = () => bytes[need(1)]!;
  const u16 = () => view.getUint16(need(2), true);
  const u32 = () => view.getUint32(need(4), true);
  const u64 = (): number => {
    const v = view.getBigUint64(need(8), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${v} is too large`);
    return Number(v);
  };
  const raw = (n: number) => bytes.subarray(need(n), pos);
  const line = (): string => {
    const nl = bytes.indexOf(0x0a, pos);
    if (nl < 0) throw new PickleTruncatedError(label, bytes.length + 1);
    const s = latin1(bytes.subarray(pos, nl));
    pos = nl + 1;
    return s;
  };
  const text = (n: number): string => {
    const b = raw(n);
    try {
      return utf8.decode(b);
    } catch {
      return fail('a string is not valid UTF-8');
    }
  };
  const int = (v: bigint): number | bigint => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
  /** Little-endian two's-complement integer of `n` bytes (LONG1 / LONG4). */
  const long = (n: number): number | bigint => {
    const b = raw(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return int(v);
  };

  const pop = (): PickleValue => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1]!)) fail('stack underflow');
    return stack.pop()!;
  };
  const top = (): PickleValue => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1]!)) return fail('stack underflow');
    return stack[stack.length - 1]!;
  };
  const popMark = (): PickleValue[] => {
    const m = marks.pop();
    if (m === undefined) return fail('no MARK to pop to');
    return stack.splice(m);
  };
  const memoGet = (i: number): PickleValue => {
    if (!memo.has(i)) fail(`memo key ${i} was never stored`);
    return memo.get(i)!;
  };
  const setItems = (d: PickleValue, items: PickleValue[]) => {
    if (!(d instanceof PyDict)) return fail(`SETITEM(S) on ${describe(d)}, not a dict`);
    if (items.length % 2) fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) d.set(items[i]!, items[i + 1]!);
  };
  const append = (l: PickleValue, items: PickleValue[]) => {
    if (!Array.isArray(l) || isTuple(l)) return fail(`APPEND(S) on ${describe(l)}, not a list`);
    for (const it of items) l.push(it);
  };
  const global = (module: string, name: string): PyGlobal => new PyGlobal(PY2_MODULES[module] ?? module, name);
  const isInert = (cls: PickleValue): cls is PyGlobal => cls instanceof PyGlobal && opts.inert?.(cls.qualname) === true;
  /** An instance (NEWOBJ): kept inert when the caller allows its class, else refused. */
  const newObject = (cls: PickleValue, args: PickleValue, op: string): PickleValue => {
    if (isInert(cls) && Array.isArray(args)) return new PyObject(cls, args);
    return fail(`refusing to create an instance of ${describe(cls)} (${op}): checkpoints need only tensors and plain data`);
  };
  const call = (fn: PickleValue, args: PickleValue): PickleValue => {
    if (!(fn instanceof PyGlobal)) return fail(`REDUCE calls ${describe(fn)}, which is not a global`);
    if (isInert(fn) && Array.isArray(args)) return new PyObject(fn, args);
    const f = callables[fn.qualname];
    if (!f || !Object.prototype.hasOwnProperty.call(callables, fn.qualname)) {
      return fail(`refusing to call ${fn.qualname}: a checkpoint needs nothing but tensors, containers and plain values ` +
        `(this reader never runs code from the file; PyTorch's torch.load would run this call)`);
    }
    if (!Array.isArray(args)) return fail(`${fn.qualname}: arguments are ${describe(args)}, not a tuple`);
    try {
      return f(args);
    } catch (e) {
      if (e instanceof UnpicklingError) throw new UnpicklingError(`${label}: ${e.message}`);
      throw e;
    }
  };
  const persistent = (pid: PickleValue): PickleValue => {
    if (!opts.persistentLoad) return fail(`persistent id ${describe(pid)} but no persistent loader`);
    return opts.persistentLoad(pid);
  };
  const pyString = (s: string): string => {
    // Protocol 0 STRING: a Python repr in single or double quotes.
    const q = s[0];
    if ((q !== "'" && q !== '"') || s[s.length - 1] !== q || s.length < 2) fail(`bad STRING literal ${s.slice(0, 40)}`);
    return unescape(s.slice(1, -1), fail);
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v > 5) fail(`pickle protocol ${v} is newer than 5`);
        break;
      }
      case 0x95: need(8); break; // FRAME: a length hint only
      case 0x2e: { // STOP
        const value = pop();
        if (stack.length !== 0 || marks.length !== 0) fail('data left on the stack at STOP');
        return { value, end: pos };
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: // POP (of an empty mark frame: the mark itself)
        if (marks.length > 0 && stack.length === marks[marks.length - 1]) marks.pop();
        else pop();
        break;
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP

      // constants and numbers
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(view.getInt32(need(4), true)); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(long(u8())); break; // LONG1
      case 0x8b: { // LONG4
        const n = view.getInt32(need(4), true);
        if (n < 0) fail('negative LONG4 length');
        stack.push(long(n));
        break;
      }
      case 0x47: stack.push(view.getFloat64(need(8), false)); break; // BINFLOAT (big-endian)
      case 0x49: { // INT (protocol 0; "00"/"01" are False/True)
        const s = line();
        if (s === '00' || s === '01') stack.push(s === '01');
        else if (/^[-+]?\d+$/.test(s)) stack.push(int(BigInt(s)));
        else fail(`bad INT ${s}`);
        break;
      }
      case 0x4c: { // LONG (protocol 0)
        const s = line().replace(/L$/, '');
        if (!/^[-+]?\d+$/.test(s)) fail(`bad LONG ${s}`);
        stack.push(int(BigInt(s)));
        break;
      }
      case 0x46: { // FLOAT (protocol 0)
        const s = line();
        // Python's float() spellings of the specials, which Number() does not know.
        const special: Record<string, number> = { inf: Infinity, '+inf': Infinity, '-inf': -Infinity, nan: NaN, '-nan': NaN };
        const v = special[s.toLowerCase()] ?? Number(s);
        if (Number.isNaN(v) && !(s.toLowerCase() in special)) fail(`bad FLOAT ${s}`);
        stack.push(v);
        break;
      }

      // strings and bytes
      case 0x58: stack.push(text(u32())); break; // BINUNICODE
      case 0x8c: stack.push(text(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(text(u64())); break; // BINUNICODE8
      case 0x56: stack.push(unescape(line(), fail, true)); break; // UNICODE (raw-unicode-escape)
      case 0x42: stack.push(raw(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(raw(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(raw(u64()).slice()); break; // BINBYTES8
      case 0x96: stack.push(raw(u64()).slice()); break; // BYTEARRAY8
      // Python 2 str: read as text (latin-1), as Python 3's pickle does with encoding='latin1'.
      case 0x54: { // BINSTRING
        const n = view.getInt32(need(4), true);
        if (n < 0) fail('negative BINSTRING length');
        stack.push(latin1(raw(n)));
        break;
      }
      case 0x55: stack.push(latin1(raw(u8()))); break; // SHORT_BINSTRING
      case 0x53: stack.push(pyString(line())); break; // STRING

      // containers
      case 0x29: stack.push(tuple([])); break; // EMPTY_TUPLE
      case 0x85: stack.push(tuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push(tuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(tuple([a, b, c])); break; } // TUPLE3
      case 0x74: { const items = popMark(); stack.push(tuple(items)); break; } // TUPLE
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: { const items = popMark(); stack.push(items); break; } // LIST
      case 0x61: { const v = pop(); append(top(), [v]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x64: { // DICT
        const items = popMark();
        const d = new PyDict();
        setItems(d, items);
        stack.push(d);
        break;
      }
      case 0x73: { const v = pop(); const k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x8f: case 0x90: case 0x91: // EMPTY_SET, ADDITEMS, FROZENSET
        fail('sets are not supported in checkpoints');
        break;

      // memo
      case 0x70: memo.set(Number(line()), top()); break; // PUT
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x67: stack.push(memoGet(Number(line()))); break; // GET
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET

      // globals and calls: names are recorded, only allowed callables run
      case 0x63: { const module = line(); const name = line(); stack.push(global(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(); const fn = pop(); stack.push(call(fn, args)); break; } // REDUCE
      case 0x51: stack.push(persistent(pop())); break; // BINPERSID
      case 0x50: stack.push(persistent(line())); break; // PERSID
      case 0x62: { // BUILD
        const state = pop();
        const obj = top();
        // An OrderedDict's instance dict (torch state dicts carry `_metadata`): kept as data.
        if (obj instanceof PyDict && obj.className === 'collections.OrderedDict') obj.attrs = state;
        else if (obj instanceof PyObject) obj.state = state;
        else fail(`refusing to set the state of ${describe(obj)} (BUILD): only OrderedDicts may carry attributes`);
        break;
      }
      case 0x81: { // NEWOBJ: cls.__new__(cls, *args)
        const args = pop();
        stack.push(newObject(pop(), args, 'NEWOBJ'));
        break;
      }
      case 0x92: { // NEWOBJ_EX: cls.__new__(cls, *args, **kwargs)
        pop();
        const args = pop();
        stack.push(newObject(pop(), args, 'NEWOBJ_EX'));
        break;
      }
      case 0x69: { const module = line(); const name = line(); fail(`refusing to create an instance of ${module}.${name} (INST)`); break; }
      case 0x6f: { // OBJ
        const items = popMark();
        fail(`refusing to create an instance of ${describe(items[0])} (OBJ)`);
        break;
      }
      case 0x82: case 0x83: case 0x84: fail('extension-registry globals (EXT1/2/4) are not supported'); break;
      case 0x97: case 0x98: fail('out-of-band buffers (protocol 5) are not supported'); break;
      default:
        fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')} at offset ${pos - 1}`);
    }
  }
}

/**
 * Protocol 0's escapes: UNICODE is raw-unicode-escape (only \\uNNNN and \\UNNNNNNNN; other backslashes are
 * literal), STRING a Python repr (\\n, \\xNN, \\\\, quotes, ...).
 */
function unescape(s: string, fail: (m: string) => never, rawUnicode = false): string {
  const re = rawUnicode ? /\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})/g : /\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)/g;
  return s.replace(re, (_, e: string) => {
    if (e.length > 1) return String.fromCodePoint(parseInt(e.slice(1), 16));
    const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
    return simple[e] ?? fail(`unsupported string escape \\${e}`);
  });
}
