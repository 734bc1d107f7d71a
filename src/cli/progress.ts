// The terminal progress display for model downloads (src/io/hub.ts reports progress through a plain callback;
// drawing it belongs to the CLI).

import cliProgressLib from 'cli-progress';

import type { HubProgress, HubProgressFn } from '../io/hub.js';

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[u]}`;
}

/** The CLI's progress callback; call stop() when resolveModel settles (its redraw timer would keep Node alive). */
export type CliProgress = HubProgressFn & { stop(): void };

/**
 * Progress display for the CLI: a bar with file name, bytes and speed when `stream` is a
 * terminal; on a pipe or log file (no cursor control) one line per finished file instead.
 */
export function cliProgress(stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr): CliProgress {
  let current = -1;
  let started = 0;
  let startBytes = 0;
  let doneIndex = -1;
  // speed of this run only: bytes resumed from an earlier run were not transferred now
  const speed = (received: number) => {
    const s = (Date.now() - started) / 1000;
    return s > 0.2 ? `${formatBytes((received - startBytes) / s)}/s` : '';
  };
  const begin = (p: HubProgress) => {
    current = p.fileIndex;
    started = Date.now();
    startBytes = p.received;
  };

  if (!stream.isTTY) {
    const fn = (p: HubProgress) => {
      if (p.fileIndex === doneIndex) return;
      if (p.fileIndex !== current) begin(p);
      if (p.total > 0 && p.received === p.total) {
        doneIndex = p.fileIndex;
        const rate = speed(p.received);
        stream.write(`[${p.fileIndex + 1}/${p.files}] ${p.file} ${formatBytes(p.total)}${rate ? ` (${rate})` : ''}\n`);
      }
    };
    return Object.assign(fn, { stop: () => undefined });
  }

  const bar = new cliProgressLib.SingleBar(
    {
      stream,
      format: '[{index}/{files}] {file} |{bar}| {percentage}% {bytes} {speed}',
      hideCursor: false, // a crash must not leave the user's cursor hidden
      clearOnComplete: false,
      barsize: 30,
      fps: 10,
    },
    cliProgressLib.Presets.shades_classic,
  );
  let running = false;
  const stop = () => {
    if (running) bar.stop(); // draws the final state and moves to the next line
    running = false;
  };
  const fn = (p: HubProgress) => {
    if (p.fileIndex === doneIndex) return; // a finished file's bar is already drawn
    const fresh = p.fileIndex !== current;
    if (fresh) {
      stop();
      begin(p);
    }
    const payload = {
      index: p.fileIndex + 1,
      files: p.files,
      file: p.file,
      bytes: `${formatBytes(p.received)}/${p.total > 0 ? formatBytes(p.total) : '?'}`,
      speed: speed(p.received),
    };
    if (fresh) {
      bar.start(Math.max(p.total, 1), p.received, payload);
      running = true;
    }
    if (p.total > 0) bar.setTotal(p.total);
    bar.update(p.received, payload);
    if (p.total > 0 && p.received === p.total) {
      doneIndex = p.fileIndex;
      stop();
    }
  };
  return Object.assign(fn, { stop });
}

/**
 * A bar for work counted in steps (`label |████| done/total unit | eta`) on a terminal; on a pipe, a line every
 * 10 %. Call stop() at the end.
 */
export function stepProgress(label: string, unit: string, stream: NodeJS.WritableStream & { isTTY?: boolean } = process.stderr): { update(done: number, total: number): void; stop(): void } {
  const bar = new cliProgressLib.SingleBar({
    stream,
    format: `${label} |{bar}| {value}/{total} ${unit} | {eta_formatted} left`,
    hideCursor: false,
  }, cliProgressLib.Presets.shades_classic);
  let started = false;
  let lastLogged = -1;
  return {
    update(done, total) {
      if (stream.isTTY) {
        if (!started) bar.start(total, 0);
        started = true;
        bar.setTotal(total);
        bar.update(done);
      } else {
        const pct = total > 0 ? Math.floor((100 * done) / total / 10) * 10 : 0;
        if (pct !== lastLogged) {
          lastLogged = pct;
          stream.write(`${label}: ${done}/${total} ${unit}\n`);
        }
      }
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
