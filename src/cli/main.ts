#!/usr/bin/env node
// `musicgen <command> [flags]`: the package's one executable (package.json "bin"). Each command lives in its own
// module with its own flags; this file only picks the module, so `musicgen serve` never loads the trainer.
// `npm run generate -- …` and the other npm scripts run this same file after building.

type Command = 'generate' | 'separate' | 'finetune' | 'serve' | 'probe' | 'bench' | 'convert';

const COMMANDS: Record<Command, { about: string; load: () => Promise<{ run: (argv: string[]) => void }> }> = {
  generate: { about: 'generate music from a prompt, a melody or a clip to continue', load: () => import('./generate.js') },
  separate: { about: 'split a clip into stems (vocals, drums, bass, other) with Demucs', load: () => import('./separate.js') },
  finetune: { about: 'fine-tune a model on captioned clips', load: () => import('./finetune.js') },
  serve: { about: 'the Cog-compatible HTTP server and the web page', load: () => import('./serve.js') },
  probe: { about: 'run each network on given inputs (parity checks against PyTorch)', load: () => import('./probe.js') },
  bench: { about: 'benchmarks: end to end, kernels, decode-step profile', load: () => import('./bench.js') },
  convert: { about: 'copy a model with its matrices in f16, q8 or q4', load: () => import('./convert.js') },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'Usage: musicgen <command> [flags]   (musicgen <command> --help lists the flags)',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.about}`),
  ].join('\n');
}

const isCommand = (s: string | undefined): s is Command => s !== undefined && Object.hasOwn(COMMANDS, s);

async function dispatch(argv: string[]): Promise<void> {
  const name = argv[2];
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return;
  }
  if (name === '--version' || name === '-V') {
    console.log((await import('../io/package.js')).PACKAGE_VERSION);
    return;
  }
  if (!isCommand(name)) {
    console.error(`musicgen: unknown command '${name}'\n\n${usage()}`);
    process.exit(2);
  }
  // the command parses [node, script, ...its flags], as if it had been run on its own
  (await COMMANDS[name].load()).run([argv[0], argv[1], ...argv.slice(3)]);
}

dispatch(process.argv).catch((e: unknown) => {
  console.error(`musicgen: ${(e as Error).message}`);
  process.exit(1);
});
