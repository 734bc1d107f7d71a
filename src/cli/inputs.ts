// The CLIs' side of src/inputs.ts: commander options built from a command's field table (flag, help with the
// range, default, choices, a parser that applies the table's rules), library errors told in flags, and the exit
// codes the README promises (2 for bad input, 1 for anything else).

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { InputError, checkValue, describeRange, byOption, flagName, renameInputs, type InputField } from '../inputs.js';

/** The flag of a library option (`topK` → `--top-k`), or undefined when the table has none. */
export function flagOf(table: readonly InputField[], option: string): string | undefined {
  const f = byOption(table, option);
  return f ? flagName(f) : undefined;
}

/** A library error in the CLI's words: the field and the inputs it mentions as flags. */
export function cliMessage(e: Error, table: readonly InputField[]): string {
  const rename = (name: string): string | undefined => flagOf(table, name);
  if (e instanceof InputError) return `${rename(e.field) ?? e.field}: ${renameInputs(e.reason, rename)}`;
  return renameInputs(e.message, rename);
}

function parser(f: InputField, flag: string): ((v: string, prev: unknown) => unknown) | undefined {
  if (f.type === 'integer' || f.type === 'number') {
    return (v: string): number => {
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('must be a number.');
      try {
        checkValue(f, flag, n);
      } catch (e) {
        if (e instanceof InputError) throw new InvalidArgumentError(`${e.reason}.`);
        throw e;
      }
      return n;
    };
  }
  if (f.repeat) return (v: string, prev: unknown): string[] => [...(Array.isArray(prev) ? (prev as string[]) : []), v];
  return undefined;
}

/**
 * Adds one option per field of `table` that has a flag; returns, for each, the field and the key commander
 * stores its value under (for reading the values back as library options).
 */
export function addInputOptions(program: Command, table: readonly InputField[]): { field: InputField; key: string }[] {
  const added: { field: InputField; key: string }[] = [];
  for (const f of table) {
    if (!f.flag) continue;
    const range = f.type === 'integer' || f.type === 'number' ? `${describeRange(f)}${f.unset !== undefined ? `, or ${f.unset}` : ''}` : '';
    const o = new Option(f.flag, `${(f.help ?? f.description).replace(/\.$/, '')}${range ? ` (${range})` : ''}`);
    if (f.choices) o.choices(f.choices);
    const parse = parser(f, flagName(f)!);
    if (parse) o.argParser(parse);
    if (f.default !== undefined && f.type !== 'boolean') o.default(f.default);
    if (f.required) o.makeOptionMandatory();
    program.addOption(o);
    added.push({ field: f, key: o.attributeName() });
  }
  return added;
}

/** The parsed flags as library options (only those with a library option; unset flags left out). */
export function optionValues(program: Command, added: { field: InputField; key: string }[]): Record<string, unknown> {
  const values = program.opts();
  const out: Record<string, unknown> = {};
  for (const { field, key } of added) if (field.option && values[key] !== undefined) out[field.option] = values[key];
  return out;
}

/** A failure of the command line itself (exits 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Runs a CLI's `main` and exits: 0 on success, 2 for bad input (an InputError, a UsageError, a flag commander
 * refused — it has printed why), 1 for anything else. `inputErrors` adds other error classes that mean bad input.
 */
export function runCli(name: string, main: () => Promise<void>, table: readonly InputField[], inputErrors: (new (...a: never[]) => Error)[] = []): void {
  main().then(() => process.exit(0), (e: unknown) => {
    if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
    const err = e instanceof Error ? e : new Error(String(e));
    console.error(`${name}: ${cliMessage(err, table)}`);
    const input = err instanceof InputError || err instanceof UsageError || inputErrors.some((c) => err instanceof c);
    process.exit(input ? 2 : 1);
  });
}
