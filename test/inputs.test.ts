// The input tables (src/inputs.ts) and what is built from them: unknown options named with the option meant,
// value checks, the CLI's flags and the server's fields read from the same rows.

import assert from 'node:assert/strict';
import { Command } from 'commander';
import {
  PREDICT_INPUTS, TRAIN_INPUTS, InputError, checkOptions, checkValue, unknownOption, editDistance, renameInputs, byOption,
} from '../src/inputs.js';
import { addInputOptions, optionValues, cliMessage } from '../src/cli/inputs.js';
import { predictorFields, trainerFields, validateInput, toOptions } from '../src/server/schema.js';

const throwsOn = (fn: () => void, field: string, message: RegExp): void => {
  assert.throws(fn, (e: unknown) => e instanceof InputError && e.field === field && message.test(e.message), `expected InputError on ${field} matching ${message}`);
};

describe('inputs: one table per command', () => {
  it('refuses unknown options, naming the option meant (Cog names, flags, case, typos)', () => {
    throwsOn(() => checkOptions(PREDICT_INPUTS, { top_k: 1 }), 'top_k', /did you mean `topK`\?/);
    throwsOn(() => checkOptions(PREDICT_INPUTS, { classifier_free_guidance: 1 }), 'classifier_free_guidance', /did you mean `guidance`\?/);
    throwsOn(() => checkOptions(PREDICT_INPUTS, { normalization_strategy: 'peak' }), 'normalization_strategy', /`normalization`/);
    throwsOn(() => checkOptions(PREDICT_INPUTS, { description: 'x' }), 'description', /`prompt`/);
    throwsOn(() => checkOptions(PREDICT_INPUTS, { 'top-p': 0.5 }), 'top-p', /`topP`/);
    throwsOn(() => checkOptions(PREDICT_INPUTS, { topk: 5 }), 'topk', /`topK`/);
    throwsOn(() => checkOptions(PREDICT_INPUTS, { temprature: 1 }), 'temprature', /`temperature`/);
    throwsOn(() => checkOptions(PREDICT_INPUTS, { duratoin: 1 }), 'duratoin', /`duration`/);
    throwsOn(() => checkOptions(PREDICT_INPUTS, { banana: 1 }), 'banana', /the options are prompt, inputAudio/);
    throwsOn(() => checkOptions(TRAIN_INPUTS, { batch_size: 2 }), 'batch_size', /`batchSize`/);
    // keys a caller may pass besides the inputs
    checkOptions(PREDICT_INPUTS, { prompt: 'x', signal: undefined, onProgress: () => undefined }, ['signal', 'onProgress']);
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(unknownOption(PREDICT_INPUTS, 'seeed'), 'unknown option; did you mean `seed`?');
  });

  it('checks values by the table: types, ranges, whole numbers, choices, the "unset" value', () => {
    const f = (o: string) => byOption(PREDICT_INPUTS, o)!;
    for (const v of [0, -1, Number.NaN, 1e9, '8']) throwsOn(() => checkValue(f('duration'), 'duration', v), 'duration', /duration: must be/);
    throwsOn(() => checkValue(f('topK'), 'topK', 2.5), 'topK', /whole number/);
    throwsOn(() => checkValue(f('normalization'), 'normalization', 'loud'), 'normalization', /one of loudness, clip, peak, rms, none/);
    throwsOn(() => checkValue(f('continuation'), 'continuation', 'yes'), 'continuation', /true or false/);
    throwsOn(() => checkValue(f('continuationEnd'), 'continuationEnd', -0.5), 'continuationEnd', /≥ 0 \(or -1\)/);
    checkValue(f('continuationEnd'), 'continuationEnd', -1);
    checkValue(f('seed'), 'seed', -1);
    throwsOn(() => checkOptions(PREDICT_INPUTS, { prompt: ['a', 3] }), 'prompt', /must be text/);
    checkOptions(PREDICT_INPUTS, { prompt: ['a', 'b'], seed: 3, normalization: 'none' });
  });

  it('the CLI builds its flags, defaults and help from the table and tells library errors in flags', () => {
    const program = new Command().exitOverride().configureOutput({ writeErr: () => undefined }).configureHelp({ helpWidth: 400 });
    const added = addInputOptions(program, PREDICT_INPUTS);
    program.parse(['--prompt', 'a', '--prompt', 'b', '--top-k', '5', '--continuation'], { from: 'user' });
    assert.deepEqual(optionValues(program, added), {
      prompt: ['a', 'b'], topK: 5, continuation: true, duration: 8, continuationStart: 0, normalization: 'loudness', topP: 0, temperature: 1, guidance: 3,
      decoder: 'encodec',
      melodyStems: true,
    });
    // a boolean that defaults to true is turned off by its --no- flag
    const off = new Command().exitOverride();
    const offAdded = addInputOptions(off, PREDICT_INPUTS);
    off.parse(['--no-melody-stems'], { from: 'user' });
    assert.equal(optionValues(off, offAdded).melodyStems, false);
    assert.match(program.helpInformation(), /--guidance <g> +classifier-free guidance scale \(1 = none\) \(≥ 0 and ≤ 100\) \(default: 3\)/);
    const bad = new Command().exitOverride().configureOutput({ writeErr: () => undefined });
    addInputOptions(bad, PREDICT_INPUTS);
    assert.throws(() => bad.parse(['--duration', 'NaN'], { from: 'user' }), /'--duration <s>' argument 'NaN' is invalid. must be a number/);
    assert.throws(() => bad.parse(['--top-p', '2'], { from: 'user' }), /must be ≥ 0 and ≤ 1, got 2/);
    assert.equal(cliMessage(new InputError('continuationStart', '(3 s) is after `continuationEnd` (2 s)'), PREDICT_INPUTS), '--continuation-start: (3 s) is after `--continuation-end` (2 s)');
    assert.equal(cliMessage(new InputError('resume', 'x `lr` y'), TRAIN_INPUTS), '--resume: x `--lr` y');
    assert.equal(renameInputs('`a` and `topK`', (n) => (n === 'topK' ? 'top_k' : undefined)), '`a` and `top_k`');
  });

  it('the server reads the same rows: Cog names, the old name `description`, values back to library options', () => {
    const fields = predictorFields({ maxDuration: 30, isMelody: true });
    // model_version only where the server offers named models
    assert.deepEqual(fields.map((f) => f.name), PREDICT_INPUTS.filter((f) => f.cog && f.cog !== 'model_version').map((f) => f.cog));
    const named = predictorFields({ maxDuration: 30, modelVersions: ['small', 'encode-decode'] });
    assert.deepEqual(named.map((f) => f.name), PREDICT_INPUTS.filter((f) => f.cog).map((f) => f.cog));
    assert.deepEqual([named[0].choices, named[0].default], [['small', 'encode-decode'], 'small']);
    assert.equal(fields.find((f) => f.name === 'duration')!.maximum, 30);
    assert.deepEqual(trainerFields().map((f) => f.name), TRAIN_INPUTS.filter((f) => f.cog).map((f) => f.cog));
    const v = validateInput(fields, { description: 'old clients', top_k: 7, seed: -1 });
    assert.deepEqual(v.issues, []);
    assert.deepEqual(v.stripped, []);
    assert.equal(v.values.prompt, 'old clients');
    const o = toOptions(PREDICT_INPUTS, v.values);
    assert.equal(o.topK, 7);
    assert.equal(o.prompt, 'old clients');
    assert.equal(o.guidance, 3);
    assert.equal(v.values.continuation_end, null);
    assert.equal(validateInput(fields, { prompt: 'x', continuation_end: -0.5 }).issues[0].msg, 'ensure this value is greater than or equal to 0 (or -1 for none)');
  });
});
