// The MusicGen page: a form for the Cog predictor's inputs, generation on the server (POST /predictions with
// `Accept: text/event-stream`, progress from the `log` events) or in this browser on WebGPU (the library's
// browser bundle, loading the model folder the server exposes under /model/), a player, and a picture of the
// result (waveform and spectrogram on a canvas). Plain ES module, no build step.
//
// Streaming: when the server runs with --stream (its output is an iterator of files: raw chunks of the audio as
// it is made, then the whole normalised clip) and always in the browser (the library's `onAudio`), the chunks
// are played as they arrive with Web Audio, each scheduled at its start sample so they join without gaps, and
// the waveform grows on the canvas; the normalised file fills the player and the download at the end.
//
// Where the browser has WebGPU the Fine-tune panel (finetune.js) trains LoRA adapters on dropped clips in the page
// and generates through this form's request with the tuned model.

import { setupFinetune } from './finetune.js';

const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  /** { blob, dataUri, name } of the melody / clip, or null. */
  inputAudio: null,
  recorder: null,
  /** { cancel() } while a generation runs. */
  running: null,
  lib: null,
  browserModel: null,
  objectUrls: [],
  /** The AudioContext live playback uses (made on the first Generate click: browsers start audio on a gesture). */
  audioCtx: null,
  /** The LiveAudio of the generation being heard, or null. */
  live: null,
  /** The error shown came from a generation's input (cleared when the input is edited), not from start-up. */
  errorFromInput: false,
  /** Set while the Fine-tune panel trains (generation waits). */
  training: false,
};
window.musicgenPage = { lastBrowserResult: null };

// ------------------------------------------------------------------------------------------------------------
// small helpers

async function getJson(url) {
  const res = await fetch(url, { headers: { Accept: 'application/json' } });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

function setState(s) {
  document.body.dataset.state = s;
}

function setStatus(text) {
  $('status').textContent = text;
}

function setProgress(fraction) {
  $('progress').value = Math.max(0, Math.min(1, fraction));
}

function appendLog(text) {
  const pre = $('logs');
  pre.textContent += text.endsWith('\n') ? text : `${text}\n`;
  pre.scrollTop = pre.scrollHeight;
}

function randomId() {
  const a = 'abcdefghijklmnopqrstuvwxyz234567';
  const bytes = crypto.getRandomValues(new Uint8Array(26));
  return Array.from(bytes, (b) => a[b & 31]).join('');
}

function blobToDataUri(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

function numberOf(id) {
  const v = $(id).value.trim();
  return v === '' ? undefined : Number(v);
}

/** What each input does, in words for people (Cog's own descriptions are written for API clients). */
const HELP = {
  prompt: 'Describe the music: genre, instruments, mood, tempo.',
  duration: 'Length of the result in seconds. With a clip to continue, the clip counts towards it.',
  continuation: 'Carry on from the clip instead of following its melody.',
  continuation_start: 'Where in the clip to start (seconds).',
  continuation_end: 'Where in the clip to stop (seconds); empty for the end of the clip.',
  top_k: 'Pick each step among this many most likely sounds. Lower is safer, higher more varied. 0 turns it off.',
  top_p: 'Pick among the most likely sounds that together make up this share of probability (0 to 1). 0 uses Top-k instead.',
  temperature: 'Higher is more adventurous, lower more predictable. 0 always picks the most likely sound.',
  classifier_free_guidance: 'How closely to follow the prompt: 1 adds no extra push, 3 is the usual, higher sticks to it more.',
  seed: 'The same seed and settings give the same music. Empty for a new one each time.',
  normalization_strategy: 'How the loudness of the result is adjusted.',
  output_format: 'WAV keeps every detail; MP3 is smaller.',
};

/** Names of inputs as the page shows them: the text of their label, e.g. top_k → "Top-k". */
const EXTRA_LABELS = { input_audio: 'Melody or clip', continuation: 'Continue the clip' };
function labelOf(name) {
  const label = document.querySelector(`label[for="${CSS.escape(name)}"]`);
  return (label && label.textContent.trim()) || EXTRA_LABELS[name] || name;
}

function describeDetail(detail) {
  if (!Array.isArray(detail)) return String(detail);
  return detail.map((d) => {
    const loc = d.loc || [];
    const name = loc[0] === 'body' && loc[1] === 'input' && loc.length > 2 ? labelOf(String(loc[2])) : loc.join('.');
    return `${name}: ${d.msg}`;
  }).join('; ');
}

// ------------------------------------------------------------------------------------------------------------
// start-up: what the model is, the inputs' ranges and defaults from /openapi.json

async function init() {
  let info;
  for (;;) {
    info = await getJson('/model-info');
    if (info.status !== 'STARTING') break;
    $('model-line').textContent = `${info.model}: loading the model on the server…`;
    await new Promise((r) => setTimeout(r, 1000));
  }
  state.info = info;
  if (info.status === 'SETUP_FAILED' || info.status === 'DEFUNCT') {
    $('model-line').textContent = `${info.model}: the server could not load the model (${info.status}); see /health-check`;
    setState('error');
    return;
  }
  // with several models (serve --models) the default one loads on the first prediction: nothing to tell yet
  $('model-line').textContent = info.sample_rate === null
    ? `${info.model} · loaded on the first prediction`
    : `${info.model} · ${info.is_melody ? 'melody' : 'text'} model · ${info.channels === 2 ? 'stereo' : 'mono'} · ${info.sample_rate / 1000} kHz`;

  try {
    const openapi = await getJson('/openapi.json');
    applySchema(openapi);
  } catch (e) {
    appendLog(`could not read /openapi.json: ${e.message}`);
  }

  $('melody-note').textContent = info.is_melody
    ? 'unticked: the music follows the melody of the clip'
    : 'this model is text-only: it can only continue a clip';

  const canGpu = typeof navigator !== 'undefined' && 'gpu' in navigator;
  const browserRadio = document.querySelector('input[name=where][value=browser]');
  if (!info.browser_bundle || !canGpu) {
    browserRadio.disabled = true;
    $('browser-choice').title = !info.browser_bundle ? 'the browser bundle is not built on the server (npm run build:browser)' : 'this browser has no WebGPU';
    $('browser-choice').classList.add('muted');
  }
  if (!navigator.mediaDevices || typeof MediaRecorder === 'undefined') {
    $('record').disabled = true;
    $('record').title = 'recording needs MediaRecorder and a microphone (and https or localhost)';
  }
  drawPlaceholder();
  if (info.browser_bundle && canGpu) {
    setupFinetune({ state, loadLibrary, loadBrowserModel, generate, appendLog, modelUrl: location.origin + info.model_url, modelName: info.model });
  }
  setState('ready');
  if (info.browser_bundle && canGpu) showStored().catch((e) => appendLog(`could not list the stored models: ${e.message}`));
}

/** The "Stored models" card: what the library keeps in this browser's Cache Storage, with the quota. */
async function showStored() {
  if (!state.info?.browser_bundle || typeof caches === 'undefined') return;
  // the library is loaded only if something is stored or a model was loaded in the page
  if (!state.lib && !(await caches.has('musicgen-weights'))) return;
  state.lib ??= await import(state.info.browser_bundle);
  const files = await state.lib.listStoredModels();
  const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
  const list = $('stored');
  list.textContent = '';
  for (const f of files) {
    const li = document.createElement('li');
    li.textContent = `${f.url.replace(location.origin, '')}: ${mb(f.stored)}${f.stored < f.size ? ` of ${mb(f.size)}` : ''}`;
    list.append(li);
  }
  if (!files.length) list.innerHTML = '<li class="muted">nothing stored</li>';
  const est = navigator.storage?.estimate ? await navigator.storage.estimate() : null;
  $('stored-usage').textContent = est?.quota ? `this site uses ${mb(est.usage ?? 0)} of the ${mb(est.quota)} the browser allows it` : '';
  $('clear-stored').disabled = !files.length;
  $('stored-card').hidden = false;
}

async function clearStored() {
  if (!state.lib) return;
  const n = await state.lib.clearStoredModels();
  appendLog(`cleared the stored models (${n} entries)`);
  await showStored();
}

function applySchema(openapi) {
  const schemas = openapi.components.schemas;
  const props = schemas.Input.properties;
  for (const [name, p] of Object.entries(props)) {
    const el = $(name);
    if (!el) continue;
    const ref = p.allOf && p.allOf[0] && p.allOf[0].$ref;
    if (ref && el.tagName === 'SELECT') {
      const choices = schemas[ref.split('/').pop()].enum;
      el.replaceChildren(...choices.map((c) => new Option(c, c)));
    }
    if (el.tagName === 'INPUT' && el.type === 'number') {
      if (p.minimum !== undefined) el.min = String(p.minimum);
      if (p.exclusiveMinimum !== undefined) el.min = String(p.exclusiveMinimum);
      if (p.maximum !== undefined) el.max = String(p.maximum);
    }
    if (p.default !== undefined && p.default !== null) el.value = String(p.default);
  }
  for (const [name, text] of Object.entries(HELP)) {
    const el = $(name);
    if (el) el.title = text;
    const label = document.querySelector(`label[for="${name}"]`);
    if (label) label.title = text;
  }
  state.defaultDuration = props.duration && props.duration.default;
  const maxDuration = props.duration && props.duration.maximum;
  if (maxDuration) $('duration-range').max = String(Math.min(30, maxDuration));
  $('duration-range').value = $('duration').value;
}

// ------------------------------------------------------------------------------------------------------------
// the melody / clip: a file or a recording

async function setInputAudio(blob, name) {
  state.inputAudio = { blob, name, dataUri: await blobToDataUri(blob) };
  const url = URL.createObjectURL(blob);
  state.objectUrls.push(url);
  $('input-player').src = url;
  $('input-player').hidden = false;
  $('clear-audio').hidden = false;
  if (state.info && !state.info.is_melody) $('continuation').checked = true;
}

function clearInputAudio() {
  state.inputAudio = null;
  $('audio-file').value = '';
  $('input-player').removeAttribute('src');
  $('input-player').hidden = true;
  $('clear-audio').hidden = true;
}

async function toggleRecording() {
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    setStatus(`no microphone: ${e.message}`);
    return;
  }
  const rec = new MediaRecorder(stream);
  const chunks = [];
  rec.ondataavailable = (e) => { if (e.data.size > 0) chunks.push(e.data); };
  rec.onstop = async () => {
    for (const t of stream.getTracks()) t.stop();
    state.recorder = null;
    $('record').textContent = '● Record';
    $('record').classList.remove('recording');
    const blob = new Blob(chunks, { type: rec.mimeType || 'audio/webm' });
    $('audio-file').value = '';
    await setInputAudio(blob, 'recording');
  };
  rec.start();
  state.recorder = rec;
  $('record').textContent = '■ Stop';
  $('record').classList.add('recording');
}

// ------------------------------------------------------------------------------------------------------------
// live playback of streamed chunks, and the waveform growing as they come

/**
 * Plays chunks of one clip as they arrive: chunk k (samples [start, end)) is scheduled at t0 + start / rate, so
 * consecutive chunks join sample-exactly. Playback waits until the audio received lasts longer than making the
 * rest is expected to take (the rate measured from the arrivals so far), so it plays through without gaps: at
 * once when generation is faster than real time, later on a slow machine. Should a chunk still come after its
 * time, playback pauses there and waits again the same way.
 */
class LiveAudio {
  static LEAD = 0.15;
  /** Share of the buffered audio that making the rest may take (a margin for a rate that varies). */
  static MARGIN = 0.8;

  constructor(ctx, sampleRate, totalSamples, onPlay) {
    this.ctx = ctx;
    this.rate = sampleRate;
    this.total = totalSamples;
    this.onPlay = onPlay;
    this.t0 = null;
    this.pending = [];
    this.sources = [];
    this.received = 0;
    this.firstAt = null;
    this.firstSamples = 0;
    this.stalls = 0;
    this.stopped = false;
  }

  push(channels, start, final) {
    if (this.stopped) return;
    const n = channels[0].length;
    const wall = performance.now() / 1000;
    if (this.firstAt === null && n > 0) {
      this.firstAt = wall;
      this.firstSamples = start + n;
    }
    this.received = Math.max(this.received, start + n);
    if (n > 0) {
      const buf = this.ctx.createBuffer(channels.length, n, this.rate);
      channels.forEach((ch, c) => buf.copyToChannel(ch, c));
      this.pending.push({ buf, start });
    }
    if (this.t0 !== null && this.pending.length > 0 && this.t0 + this.pending[0].start / this.rate < this.ctx.currentTime + 0.01) {
      // came after its time: pause here and buffer again
      this.t0 = null;
      this.stalls++;
    }
    if (this.t0 === null && this.pending.length > 0 && (final || this.received >= this.total || this.enough(wall))) {
      this.t0 = this.ctx.currentTime + LiveAudio.LEAD - this.pending[0].start / this.rate;
      this.onPlay?.();
    }
    if (this.t0 !== null) this.schedule();
  }

  /** Whether the audio buffered outlasts making the rest, at the rate measured since the first chunk. */
  enough(wall) {
    const made = this.received - this.firstSamples;
    const elapsed = wall - this.firstAt;
    if (made <= 0 || elapsed <= 0) return false;
    const restSeconds = (this.total - this.received) / (made / elapsed);
    const bufferedSeconds = (this.received - this.pending[0].start) / this.rate;
    return restSeconds <= LiveAudio.MARGIN * bufferedSeconds;
  }

  schedule() {
    for (const { buf, start } of this.pending.splice(0)) {
      const src = this.ctx.createBufferSource();
      src.buffer = buf;
      src.connect(this.ctx.destination);
      src.start(this.t0 + start / this.rate);
      src.onended = () => { this.sources = this.sources.filter((x) => x !== src); };
      this.sources.push(src);
    }
  }

  stop() {
    this.stopped = true;
    this.pending = [];
    for (const src of this.sources) {
      try { src.stop(); } catch { /* not started yet */ }
    }
    this.sources = [];
  }
}

/** The waveform of a clip drawn column by column as its samples arrive (the full picture replaces it at the end). */
class LiveWave {
  constructor(totalSamples, sampleRate) {
    this.total = Math.max(1, totalSamples);
    this.rate = sampleRate;
    this.drawnTo = 0;
    const { ctx, w, h, dpr } = canvasSize();
    Object.assign(this, { ctx, w, h, dpr });
    ctx.fillStyle = '#0d1021';
    ctx.fillRect(0, 0, w, h);
    this.lo = new Float32Array(w);
    this.hi = new Float32Array(w);
  }

  push(channels, start) {
    const { ctx, w, h, dpr } = this;
    const n = channels[0].length;
    for (let i = 0; i < n; i++) {
      let v = 0;
      for (const ch of channels) v += ch[i] / channels.length;
      const x = Math.min(w - 1, Math.floor(((start + i) * w) / this.total));
      if (v < this.lo[x]) this.lo[x] = v;
      if (v > this.hi[x]) this.hi[x] = v;
    }
    const end = start + n;
    const x0 = Math.max(0, Math.floor((start * w) / this.total) - 1);
    const x1 = Math.min(w, Math.ceil((end * w) / this.total));
    const mid = h / 2;
    ctx.fillStyle = '#0d1021';
    ctx.fillRect(x0, 0, x1 - x0, h);
    ctx.fillStyle = '#8b93ff';
    for (let x = x0; x < x1; x++) {
      const y0 = mid - Math.min(1, this.hi[x]) * (mid - 2);
      const y1 = mid - Math.max(-1, this.lo[x]) * (mid - 2);
      ctx.fillRect(x, y0, 1, Math.max(1, y1 - y0));
    }
    this.drawnTo = Math.max(this.drawnTo, end);
    ctx.fillStyle = '#0d1021';
    ctx.fillRect(0, 0, 260 * dpr, 20 * dpr);
    ctx.font = `${11 * dpr}px system-ui, sans-serif`;
    ctx.fillStyle = 'rgba(255,255,255,0.75)';
    ctx.textAlign = 'left';
    ctx.fillText(`as it is made: ${(this.drawnTo / this.rate).toFixed(2)} of ${(this.total / this.rate).toFixed(2)} s`, 6 * dpr, 14 * dpr);
  }
}

/** Starts hearing a new clip of `totalSamples` at `sampleRate`: live audio and the growing waveform. */
function startLive(totalSamples, sampleRate) {
  state.live?.audio?.stop();
  const audio = state.audioCtx
    ? new LiveAudio(state.audioCtx, sampleRate, totalSamples, () => appendLog(audio.stalls ? 'playing on after a pause (the generation fell behind)' : 'playing the audio as it is made'))
    : null;
  state.live = { audio, wave: new LiveWave(totalSamples, sampleRate), samples: 0, total: totalSamples };
  return state.live;
}

/** A chunk [C][n] of the clip being made, starting at sample `start`; `final`: the last. */
function liveChunk(live, channels, start, final) {
  live.audio?.push(channels, start, final);
  if (channels[0].length > 0) live.wave.push(channels, start);
  if (live.samples === 0 && channels[0].length > 0 && live.audio && live.audio.t0 === null) appendLog('the first audio is here: it plays once enough is buffered to play through without gaps');
  live.samples = Math.max(live.samples, start + channels[0].length);
}

/** Samples per channel of a 16-bit PCM or 32-bit float WAV (what the server streams). */
function parseWav(bytes) {
  const v = new DataView(bytes);
  const tag = (o) => String.fromCharCode(v.getUint8(o), v.getUint8(o + 1), v.getUint8(o + 2), v.getUint8(o + 3));
  if (tag(0) !== 'RIFF' || tag(8) !== 'WAVE') throw new Error('not a WAV file');
  let fmt = null;
  for (let o = 12; o + 8 <= v.byteLength;) {
    const id = tag(o);
    const size = v.getUint32(o + 4, true);
    if (id === 'fmt ') fmt = { format: v.getUint16(o + 8, true), channels: v.getUint16(o + 10, true), rate: v.getUint32(o + 12, true), bits: v.getUint16(o + 22, true) };
    if (id === 'data') {
      if (!fmt) throw new Error('WAV: data before fmt');
      const C = fmt.channels;
      const width = fmt.bits / 8;
      const n = Math.floor(Math.min(size, v.byteLength - o - 8) / (C * width));
      const out = Array.from({ length: C }, () => new Float32Array(n));
      for (let i = 0; i < n; i++) {
        for (let c = 0; c < C; c++) {
          const at = o + 8 + (i * C + c) * width;
          out[c][i] = fmt.bits === 16 ? v.getInt16(at, true) / 32768 : v.getFloat32(at, true);
        }
      }
      return { channels: out, sampleRate: fmt.rate };
    }
    o += 8 + size + (size & 1);
  }
  throw new Error('WAV: no data chunk');
}

/** Samples of the clip a request makes (the duration in whole frames, a clip to continue included). */
function clipSamples(duration, sampleRate, frameRate) {
  const seconds = duration ?? state.defaultDuration ?? 8; // an empty field: the server's default
  return Math.round(seconds * frameRate) * Math.round(sampleRate / frameRate);
}

// ------------------------------------------------------------------------------------------------------------
// the request

function collectInput() {
  const input = {};
  const prompt = $('prompt').value.trim();
  if (prompt) input.prompt = prompt;
  input.duration = numberOf('duration');
  if (state.inputAudio) {
    input.input_audio = state.inputAudio.dataUri;
    input.continuation = $('continuation').checked;
    input.continuation_start = numberOf('continuation_start') ?? 0;
    const end = numberOf('continuation_end');
    if (end !== undefined) input.continuation_end = end;
  }
  for (const id of ['top_k', 'top_p', 'temperature', 'classifier_free_guidance', 'seed']) {
    const v = numberOf(id);
    if (v !== undefined) input[id] = v;
  }
  input.normalization_strategy = $('normalization_strategy').value;
  input.output_format = $('output_format').value;
  return input;
}

/** Server-sent events of a fetch response: yields { event, data }. */
async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) yield { event, data: JSON.parse(data.join('\n')) };
    }
  }
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

/**
 * POSTs the prediction; while the server answers 409 (busy with someone else's generation, as Cog does when it
 * has no queue) waits and asks again, saying so. Returns the event-stream response, or null if canceled.
 */
async function submitWhenFree(id, input, stopped) {
  const since = Date.now();
  setStatus('sending…');
  for (let attempt = 1; ; attempt++) {
    const res = await fetch('/predictions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
      body: JSON.stringify({ id, input }),
    });
    if (res.status !== 409) return res;
    await res.body?.cancel();
    if (attempt === 1) {
      setState('waiting');
      appendLog('the server is busy with another generation: this one waits its turn and starts when it is free');
    }
    const asked = attempt === 1 ? 'asked once' : `asked ${attempt} times`;
    setStatus(`waiting for the server: it is busy with another generation (${asked}, ${Math.round((Date.now() - since) / 1000)} s)`);
    await sleep(Math.min(3000, 500 * attempt), stopped);
    if (stopped.aborted) return null;
  }
}

async function runOnServer(input) {
  const id = randomId();
  const stopped = new AbortController();
  let started = false;
  state.running = {
    cancel: () => {
      stopped.abort();
      if (started) fetch(`/predictions/${id}/cancel`, { method: 'POST' });
    },
  };
  const res = await submitWhenFree(id, input, stopped.signal);
  if (!res) return { canceled: true };
  started = true;
  if (stopped.signal.aborted) fetch(`/predictions/${id}/cancel`, { method: 'POST' });
  setState('running');
  if (!res.ok) {
    const j = await res.json().catch(() => ({}));
    throw new Error(j.detail ? describeDetail(j.detail) : j.error || `HTTP ${res.status}`);
  }
  // with a server queue (serve --queue N) the stream opens at once and `start` comes when the GPU is ours
  setStatus('accepted: waiting in the server\'s queue for the GPU…');
  let final = null;
  // serve --stream: output items are chunks until they make up the whole clip; the item after them is the file
  const info = state.info;
  const live = info.stream ? startLive(clipSamples(input.duration, info.sample_rate, info.frame_rate), info.sample_rate) : null;
  let chunks = Promise.resolve();
  for await (const { event, data } of sseEvents(res.body)) {
    if (event === 'output' && live) {
      const item = data.chunk;
      chunks = chunks.then(async () => {
        if (live.samples >= live.total) return; // the whole normalised file: for the player at the end
        const wav = parseWav(await (await fetch(item)).arrayBuffer());
        liveChunk(live, wav.channels, live.samples, live.samples + wav.channels[0].length >= live.total);
      }).catch((e) => appendLog(`could not play a streamed chunk: ${e.message}`));
    } else if (event === 'start') setStatus('generating…');
    else if (event === 'log') {
      appendLog(data.data);
      const m = /step (\d+) of (\d+)/.exec(data.data);
      if (m) {
        setProgress(Number(m[1]) / Number(m[2]));
        setStatus(`generating: step ${m[1]} of ${m[2]}`);
      } else if (/decoding/.test(data.data)) setStatus('decoding…');
    } else if (event === 'completed') {
      final = data;
      break;
    } else if (event === 'error') throw new Error(data.error || 'stream error');
  }
  await chunks;
  if (!final) throw new Error('the event stream ended before the prediction completed');
  if (final.status === 'canceled') return { canceled: true };
  if (final.status !== 'succeeded') throw new Error(final.error || final.status);
  const seed = /seed: (\d+)/.exec(final.logs || '');
  // an iterator output (serve --stream) ends with the whole clip
  const url = Array.isArray(final.output) ? final.output[final.output.length - 1] : final.output;
  return { url, seed: seed ? seed[1] : '', seconds: final.metrics && final.metrics.predict_time };
}

/** The library's browser bundle, imported on first use. */
async function loadLibrary() {
  if (!state.lib) {
    setStatus('loading the library…');
    state.lib = await import(state.info.browser_bundle);
  }
  return state.lib;
}

/** The server's model, loaded into this browser on first use (generation in the page, and fine-tuning). */
async function loadBrowserModel() {
  const info = state.info;
  const lib = await loadLibrary();
  if (!state.browserModel) {
    setStatus('loading the model into this browser…');
    // the weights are kept in Cache Storage: the next visit reads them from disk (download progress shows which)
    const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
    let bytes = '';
    try {
      state.browserModel = await lib.MusicGen.load(location.origin + info.model_url, {
        onDownload: (p) => {
          const net = p.received - (p.fromCache ?? 0);
          bytes = p.fromCache && !net ? `, ${mb(p.received)} of ${mb(p.total)} from this browser's storage`
            : `, ${mb(p.received)} of ${mb(p.total)} (${mb(net)} downloaded)`;
        },
        onProgress: (done, total) => { setProgress(done / total); setStatus(`loading weights: ${done} of ${total}${bytes}`); },
      });
    } finally {
      showStored().catch((e) => appendLog(`could not list the stored models: ${e.message}`));
    }
    appendLog(`model loaded into this browser${bytes}`);
  }
  return state.browserModel;
}

/** Generates in this browser with `model` (default: the server's model, loaded here). */
async function runInBrowser(input, model) {
  const lib = await loadLibrary();
  const mg = model ?? (await loadBrowserModel());
  const ac = new AbortController();
  state.running = { cancel: () => ac.abort() };
  let inputAudio;
  if (state.inputAudio) inputAudio = await lib.decodeAudio(new Uint8Array(await state.inputAudio.blob.arrayBuffer()), state.inputAudio.name);
  const t0 = performance.now();
  setStatus('generating…');
  setProgress(0);
  const live = startLive(clipSamples(input.duration, mg.sampleRate, mg.frameRate), mg.sampleRate);
  let result;
  try {
    result = await mg.generate({
      prompt: input.prompt,
      inputAudio,
      continuation: input.continuation,
      continuationStart: input.continuation_start,
      continuationEnd: input.continuation_end === -1 ? undefined : input.continuation_end,
      duration: input.duration,
      topK: input.top_k,
      topP: input.top_p,
      temperature: input.temperature,
      guidance: input.classifier_free_guidance,
      seed: input.seed === -1 ? undefined : input.seed,
      normalization: input.normalization_strategy,
      signal: ac.signal,
      // the raw decoder output as it is made (the result is normalised; these chunks are not)
      onAudio: (chunk) => liveChunk(live, chunk.audio, chunk.start, chunk.final),
      onProgress: (p) => {
        if (p.stage === 'generate') {
          setProgress(p.done / p.total);
          setStatus(`generating: step ${Math.floor(p.done)} of ${p.total}`);
        } else if (p.stage === 'decode') setStatus('decoding…');
      },
    });
  } catch (e) {
    if (e && e.name === 'AbortError') return { canceled: true };
    throw e;
  }
  const channels = result.audio[0];
  const mp3 = input.output_format === 'mp3';
  const bytes = mp3 ? await lib.encodeMp3(channels, result.sampleRate) : lib.encodeWav(channels, result.sampleRate);
  const url = URL.createObjectURL(new Blob([bytes], { type: mp3 ? 'audio/mpeg' : 'audio/wav' }));
  state.objectUrls.push(url);
  appendLog(`generated in this browser${model ? ' with the fine-tuned model' : ''}: seed ${result.seed}, ${(result.timings.per_step_ms).toFixed(1)} ms/step`);
  // for scripting the page (its tests compare these codes with Node's)
  window.musicgenPage.lastBrowserResult = { codes: Array.from(result.codes[0]), numCodebooks: result.numCodebooks, frames: result.frames, seed: result.seed, tuned: !!model };
  return { url, seed: String(result.seed), seconds: (performance.now() - t0) / 1000, samples: channels, sampleRate: result.sampleRate };
}

/** The form's Generate (on the server or in this browser), or with `tuned` the Fine-tune panel's fine-tuned model. */
async function generate(ev, tuned = null) {
  ev?.preventDefault();
  if (state.running || state.training) return;
  const where = tuned ? 'tuned' : document.querySelector('input[name=where]:checked').value;
  const input = collectInput();
  // made (or resumed) within the click, so that the browser lets it play
  try {
    state.audioCtx ??= new AudioContext();
    void state.audioCtx.resume();
  } catch (e) {
    appendLog(`no Web Audio, the audio plays at the end: ${e.message}`);
  }
  state.live?.audio?.stop();
  state.live = null;
  state.errorFromInput = false;
  setState('running');
  $('generate').disabled = true;
  $('cancel').disabled = false;
  $('logs').textContent = '';
  setProgress(0);
  try {
    const r = where === 'tuned' ? await runInBrowser(input, tuned) : where === 'browser' ? await runInBrowser(input) : await runOnServer(input);
    if (r.canceled) {
      state.live?.audio?.stop();
      setStatus('canceled');
      setState('canceled');
      return;
    }
    setProgress(1);
    await showResult(r, input.output_format, input);
    setState('done');
  } catch (e) {
    state.live?.audio?.stop();
    setStatus(`error: ${e.message}`);
    appendLog(String(e.stack || e));
    setState('error');
    state.errorFromInput = true;
  } finally {
    state.running = null;
    $('generate').disabled = false;
    $('cancel').disabled = true;
  }
}

// ------------------------------------------------------------------------------------------------------------
// the result: player, download, picture

/** Adds a result to the list of takes (newest first), where it stays until "Clear". */
function addTake(r, format, input, info) {
  const li = document.createElement('li');
  li.className = 'take';
  const title = document.createElement('div');
  title.className = 'take-title';
  title.textContent = input.prompt || (input.input_audio ? '(from the clip)' : '(no prompt)');
  const audio = document.createElement('audio');
  audio.controls = true;
  audio.preload = 'metadata';
  audio.src = r.url;
  const line = document.createElement('div');
  line.className = 'row';
  const a = document.createElement('a');
  a.href = r.url;
  a.download = `musicgen${r.seed ? `-${r.seed}` : ''}.${format}`;
  a.textContent = 'Download';
  const meta = document.createElement('span');
  meta.className = 'muted';
  meta.textContent = info;
  line.append(a, meta);
  li.append(title, audio, line);
  $('takes').prepend(li);
  $('takes-card').hidden = false;
}

function clearTakes() {
  $('takes').replaceChildren();
  $('takes-card').hidden = true;
  // the object URLs of browser-made takes (the current result keeps its own)
  const current = $('player').src;
  for (const url of state.objectUrls.splice(0)) {
    if (url === current) state.objectUrls.push(url);
    else URL.revokeObjectURL(url);
  }
}

async function showResult(r, format, input) {
  const player = $('player');
  player.src = r.url;
  const a = $('download');
  a.href = r.url;
  a.download = `musicgen${r.seed ? `-${r.seed}` : ''}.${format}`;
  a.hidden = false;
  let samples = r.samples;
  let sampleRate = r.sampleRate;
  if (!samples) {
    try {
      const bytes = await (await fetch(r.url)).arrayBuffer();
      const ctx = new OfflineAudioContext(1, 1, state.info.sample_rate || 32000);
      const buf = await ctx.decodeAudioData(bytes);
      samples = Array.from({ length: buf.numberOfChannels }, (_, c) => buf.getChannelData(c));
      sampleRate = buf.sampleRate;
    } catch (e) {
      appendLog(`could not decode the result for the picture: ${e.message}`);
    }
  }
  const seconds = samples ? samples[0].length / sampleRate : NaN;
  $('result-info').textContent = [
    Number.isFinite(seconds) ? `${seconds.toFixed(2)} s` : '',
    r.seed ? `seed ${r.seed}` : '',
    r.seconds ? `made in ${Number(r.seconds).toFixed(1)} s` : '',
  ].filter(Boolean).join(' · ');
  addTake(r, format, input, $('result-info').textContent);
  setStatus('done');
  if (samples) draw(samples, sampleRate);
}

/** In-place radix-2 FFT of (re, im), length a power of two. */
function fft(re, im) {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    const wr = Math.cos(ang);
    const wi = Math.sin(ang);
    for (let i = 0; i < n; i += len) {
      let cr = 1;
      let ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = i + k;
        const b = a + len / 2;
        const tr = re[b] * cr - im[b] * ci;
        const ti = re[b] * ci + im[b] * cr;
        re[b] = re[a] - tr;
        im[b] = im[a] - ti;
        re[a] += tr;
        im[a] += ti;
        const nr = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = nr;
      }
    }
  }
}

/** magma-like colour map, t in [0, 1]. */
const STOPS = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]];
function colour(t) {
  const x = Math.max(0, Math.min(1, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  return STOPS[i].map((v, k) => v + (STOPS[i + 1][k] - v) * f);
}

function canvasSize() {
  const c = $('picture');
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(300, Math.round(c.clientWidth * dpr));
  const h = Math.round(w / 3);
  c.width = w;
  c.height = h;
  return { c, ctx: c.getContext('2d'), w, h, dpr };
}

function drawPlaceholder() {
  const { ctx, w, h, dpr } = canvasSize();
  ctx.fillStyle = '#0d1021';
  ctx.fillRect(0, 0, w, h);
  ctx.fillStyle = '#8088a8';
  ctx.font = `${14 * dpr}px system-ui, sans-serif`;
  ctx.textAlign = 'center';
  ctx.fillText('the waveform and spectrogram of the result appear here', w / 2, h / 2);
}

function draw(channels, sampleRate) {
  const { ctx, w, h, dpr } = canvasSize();
  const n = channels[0].length;
  const mono = new Float32Array(n);
  for (const ch of channels) for (let i = 0; i < n; i++) mono[i] += ch[i] / channels.length;
  ctx.fillStyle = '#0d1021';
  ctx.fillRect(0, 0, w, h);
  const waveH = Math.round(h * 0.3);
  const specTop = waveH + Math.round(4 * dpr);
  const specH = h - specTop;

  // waveform: min and max of each column
  const mid = waveH / 2;
  ctx.fillStyle = '#8b93ff';
  for (let x = 0; x < w; x++) {
    const a = Math.floor((x * n) / w);
    const b = Math.max(a + 1, Math.floor(((x + 1) * n) / w));
    let lo = 0;
    let hi = 0;
    for (let i = a; i < b && i < n; i++) {
      if (mono[i] < lo) lo = mono[i];
      if (mono[i] > hi) hi = mono[i];
    }
    const y0 = mid - hi * (mid - 2);
    const y1 = mid - lo * (mid - 2);
    ctx.fillRect(x, y0, 1, Math.max(1, y1 - y0));
  }

  // spectrogram: Hann-windowed frames, one per column, dB relative to the loudest bin, 80 dB range
  const N = 1024;
  const bins = N / 2;
  const win = Float64Array.from({ length: N }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / N));
  const cols = w;
  const mags = new Float32Array(cols * bins);
  let peak = 1e-12;
  const re = new Float64Array(N);
  const im = new Float64Array(N);
  for (let x = 0; x < cols; x++) {
    const centre = Math.floor(((x + 0.5) * n) / cols);
    const start = centre - N / 2;
    for (let i = 0; i < N; i++) {
      const j = start + i;
      re[i] = j >= 0 && j < n ? mono[j] * win[i] : 0;
      im[i] = 0;
    }
    fft(re, im);
    for (let k = 0; k < bins; k++) {
      const m = re[k] * re[k] + im[k] * im[k];
      mags[x * bins + k] = m;
      if (m > peak) peak = m;
    }
  }
  const img = ctx.createImageData(cols, specH);
  for (let y = 0; y < specH; y++) {
    const k = Math.min(bins - 1, Math.floor(((specH - 1 - y) / specH) * bins));
    for (let x = 0; x < cols; x++) {
      const db = 10 * Math.log10(mags[x * bins + k] / peak + 1e-12);
      const [r, g, b] = colour((db + 80) / 80);
      const o = (y * cols + x) * 4;
      img.data[o] = r;
      img.data[o + 1] = g;
      img.data[o + 2] = b;
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, specTop);

  // labels
  ctx.font = `${11 * dpr}px system-ui, sans-serif`;
  ctx.fillStyle = 'rgba(255,255,255,0.75)';
  ctx.textAlign = 'left';
  ctx.fillText('waveform', 6 * dpr, 14 * dpr);
  ctx.fillText(`spectrogram 0–${(sampleRate / 2000).toFixed(0)} kHz`, 6 * dpr, specTop + 14 * dpr);
  ctx.textAlign = 'right';
  ctx.fillText(`${(n / sampleRate).toFixed(2)} s`, w - 6 * dpr, 14 * dpr);
}

// ------------------------------------------------------------------------------------------------------------
// wiring

$('form').addEventListener('submit', generate);
// an error message (a 422 naming an input, say) is about the input as it was: editing it clears the message
const clearStaleError = () => {
  if (!state.errorFromInput || document.body.dataset.state !== 'error' || state.running) return;
  state.errorFromInput = false;
  setStatus('idle');
  setState('ready');
};
$('form').addEventListener('input', clearStaleError);
$('form').addEventListener('change', clearStaleError);
$('clear-takes').addEventListener('click', clearTakes);
$('clear-stored').addEventListener('click', () => clearStored().catch((e) => appendLog(`could not clear: ${e.message}`)));
$('cancel').addEventListener('click', () => {
  if (state.running) {
    setStatus('canceling…');
    state.running.cancel();
  }
});
$('duration-range').addEventListener('input', (e) => { $('duration').value = e.target.value; });
$('duration').addEventListener('input', (e) => { $('duration-range').value = e.target.value; });
$('audio-file').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  if (file) await setInputAudio(file, file.name);
});
$('record').addEventListener('click', toggleRecording);
// the finished file played from the player: the live playback (of the same clip, not normalised) makes way
$('player').addEventListener('play', () => state.live?.audio?.stop());
$('clear-audio').addEventListener('click', clearInputAudio);
window.addEventListener('resize', () => { if (document.body.dataset.state !== 'done') drawPlaceholder(); });

init().catch((e) => {
  $('model-line').textContent = `could not reach the server: ${e.message}`;
  setState('error');
});
