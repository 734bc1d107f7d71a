// The page's Fine-tune panel: fine-tunes the server's model in this browser (WebGPU, the library's `finetune`,
// LoRA adapters) on audio files the user drops, then generates with the tuned model and offers the adapter as a
// download (adapter_model.safetensors; `musicgen generate --adapter FILE` and `MusicGen.load(model, { adapter })`
// read it as they read the finetune CLI's).
//
// Captions, as the Node trainer reads a dataset folder: a .txt of the same name beside each audio file; or a
// captions .json ({ "file.wav": "caption", … }, keys by file name or name without extension); or typed in the
// panel. A .tar / .tar.gz / .tgz is unpacked here (the browser's DecompressionStream for gzip, the ustar reader
// below for the archive) and read the same way. Plain ES module, no build step.

const AUDIO = /\.(wav|mp3|flac|ogg|opus|m4a|aac|aiff?|caf|webm)$/i;
const TAR = /\.(tar|tar\.gz|tgz)$/i;

const $ = (id) => document.getElementById(id);
const stem = (name) => name.replace(/\.[^./]*$/, '');
const base = (name) => name.slice(name.lastIndexOf('/') + 1);

// ------------------------------------------------------------------------------------------------------------
// reading what was dropped

/**
 * The regular files of a tar archive (ustar, with GNU long names and pax `path` records, as node-tar and GNU tar
 * write them): [{ name, bytes }]. Throws on a header whose checksum is wrong (not a tar file, or cut short).
 */
export function untar(bytes) {
  const td = new TextDecoder();
  const text = (o, n) => {
    const s = td.decode(bytes.subarray(o, o + n));
    const z = s.indexOf('\0');
    return z < 0 ? s : s.slice(0, z);
  };
  const octal = (o, n) => parseInt(text(o, n).trim() || '0', 8);
  const out = [];
  let longName = null;
  for (let o = 0; o + 512 <= bytes.length;) {
    const head = bytes.subarray(o, o + 512);
    if (head.every((b) => b === 0)) break; // the two zero blocks at the end
    // the checksum counts its own 8 bytes as spaces
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : head[i];
    if (sum !== octal(o + 148, 8)) throw new Error('not a tar archive (a header checksum is wrong)');
    const size = octal(o + 124, 12);
    const type = head[156] === 0 ? '0' : String.fromCharCode(head[156]);
    let name = text(o, 100);
    const prefix = text(o + 345, 155);
    if (text(o + 257, 5) === 'ustar' && prefix) name = `${prefix}/${name}`;
    const body = bytes.subarray(o + 512, o + 512 + size);
    if (body.length < size) throw new Error(`the archive is cut short inside ${name}`);
    if (type === 'L') longName = text(o + 512, size);
    else if (type === 'x') {
      // pax records: "<length> <key>=<value>\n"
      for (const rec of td.decode(body).split('\n')) {
        const m = /^\d+ path=(.*)$/.exec(rec);
        if (m) longName = m[1];
      }
    } else {
      if (type === '0' || type === '7') out.push({ name: (longName ?? name).replace(/^\.\//, ''), bytes: body.slice() });
      longName = null;
    }
    o += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

async function gunzip(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Files (and archives' members) as [{ name, bytes }], hidden and macOS "._" files left out. */
async function expand(files) {
  const out = [];
  for (const f of files) {
    const bytes = new Uint8Array(await f.arrayBuffer());
    if (TAR.test(f.name)) {
      const gz = bytes[0] === 0x1f && bytes[1] === 0x8b;
      let members;
      try {
        members = untar(gz ? await gunzip(bytes) : bytes);
      } catch (e) {
        throw new Error(`${f.name}: ${e.message}`);
      }
      out.push(...members);
    } else out.push({ name: f.name, bytes });
  }
  return out.filter((e) => !e.name.split('/').some((part) => part.startsWith('.')));
}

// ------------------------------------------------------------------------------------------------------------
// the panel

/**
 * Wires the panel. `page`: { state, loadLibrary(), loadBrowserModel(), generate(ev, model), appendLog(text),
 * modelUrl, modelName } from app.js.
 */
export function setupFinetune(page) {
  const ft = {
    /** [{ name, bytes, caption }] in the order they were added. */
    clips: [],
    /** Captions read from .txt / .json files, by file name and by name without extension. */
    captions: new Map(),
    abort: null,
    losses: [],
    tuned: null,
    adapterUrl: null,
  };
  $('finetune-card').hidden = false;

  const status = (text) => { $('ft-status').textContent = text; };
  const log = (text) => {
    const pre = $('ft-log');
    pre.textContent += `${text}\n`;
    pre.scrollTop = pre.scrollHeight;
  };

  function captionFor(name) {
    for (const k of [name, base(name), stem(name), stem(base(name))]) if (ft.captions.has(k)) return ft.captions.get(k);
    return '';
  }

  function render() {
    const list = $('ft-clips');
    list.replaceChildren(...ft.clips.map((c, i) => {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.className = 'ft-name';
      name.textContent = c.name;
      const cap = document.createElement('input');
      cap.type = 'text';
      cap.placeholder = 'caption';
      cap.value = c.caption;
      cap.setAttribute('aria-label', `caption of ${c.name}`);
      cap.addEventListener('input', () => { c.caption = cap.value; });
      const rm = document.createElement('button');
      rm.type = 'button';
      rm.className = 'secondary';
      rm.textContent = '×';
      rm.title = 'remove';
      rm.addEventListener('click', () => { ft.clips.splice(i, 1); render(); });
      li.append(name, cap, rm);
      return li;
    }));
    $('ft-train').disabled = ft.clips.length === 0 || ft.abort !== null;
  }

  async function addFiles(files) {
    let entries;
    try {
      entries = await expand([...files]);
    } catch (e) {
      status(`error: ${e.message}`);
      return;
    }
    for (const e of entries) {
      if (/\.txt$/i.test(e.name)) {
        const caption = new TextDecoder().decode(e.bytes).trim();
        for (const k of [stem(e.name), stem(base(e.name))]) ft.captions.set(k, caption);
      } else if (/\.json$/i.test(e.name)) {
        try {
          const obj = JSON.parse(new TextDecoder().decode(e.bytes));
          for (const [k, v] of Object.entries(obj)) if (typeof v === 'string') ft.captions.set(k, v.trim());
        } catch (err) {
          status(`error: ${e.name} is not a JSON object of captions (${err.message})`);
          return;
        }
      }
    }
    for (const e of entries) {
      if (!AUDIO.test(e.name)) continue;
      const old = ft.clips.findIndex((c) => c.name === e.name);
      const clip = { name: e.name, bytes: e.bytes, caption: captionFor(e.name) };
      if (old >= 0) ft.clips[old] = clip;
      else ft.clips.push(clip);
    }
    // captions that came after their audio (another drop) fill the empty ones
    for (const c of ft.clips) if (!c.caption) c.caption = captionFor(c.name);
    const uncaptioned = ft.clips.filter((c) => !c.caption).length;
    status(`${ft.clips.length} clip(s)${uncaptioned ? `, ${uncaptioned} without a caption (type one)` : ''}`);
    render();
  }

  function drawLoss() {
    const c = $('ft-loss');
    const dpr = window.devicePixelRatio || 1;
    const w = (c.width = Math.round(c.clientWidth * dpr) || c.width);
    const h = (c.height = Math.round(c.clientHeight * dpr) || c.height);
    const ctx = c.getContext('2d');
    ctx.fillStyle = '#111';
    ctx.fillRect(0, 0, w, h);
    const L = ft.losses;
    ctx.font = `${11 * dpr}px system-ui, sans-serif`;
    ctx.fillStyle = 'rgba(255,255,255,0.75)';
    if (L.length === 0) {
      ctx.fillText('training loss', 6 * dpr, 14 * dpr);
      return;
    }
    const lo = Math.min(...L);
    const hi = Math.max(...L);
    const pad = 20 * dpr;
    const x = (i) => pad + (L.length === 1 ? 0 : (i / (L.length - 1)) * (w - 2 * pad));
    const y = (v) => pad + (hi === lo ? 0.5 : (hi - v) / (hi - lo)) * (h - 2 * pad);
    ctx.strokeStyle = '#6cf';
    ctx.lineWidth = 2 * dpr;
    ctx.beginPath();
    L.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.stroke();
    ctx.fillStyle = '#6cf';
    for (let i = 0; i < L.length; i++) ctx.fillRect(x(i) - 2 * dpr, y(L[i]) - 2 * dpr, 4 * dpr, 4 * dpr);
    ctx.fillStyle = 'rgba(255,255,255,0.75)';
    ctx.fillText(`loss ${hi.toFixed(3)}`, 6 * dpr, 14 * dpr);
    ctx.fillText(`${lo.toFixed(3)}`, 6 * dpr, h - 6 * dpr);
    ctx.textAlign = 'right';
    ctx.fillText(`step ${L.length}: ${L[L.length - 1].toFixed(4)}`, w - 6 * dpr, 14 * dpr);
    ctx.textAlign = 'left';
  }

  const number = (id) => {
    const v = $(id).value.trim();
    return v === '' ? undefined : Number(v);
  };

  async function train() {
    if (ft.abort || page.state.running) return;
    const missing = ft.clips.filter((c) => !c.caption.trim());
    if (missing.length) {
      status(`error: ${missing.length} clip(s) have no caption: ${missing.map((c) => c.name).join(', ')}`);
      return;
    }
    ft.abort = new AbortController();
    page.state.training = true;
    $('ft-train').disabled = true;
    $('ft-cancel').disabled = false;
    $('ft-generate').disabled = true;
    $('generate').disabled = true;
    ft.losses = [];
    $('ft-log').textContent = '';
    drawLoss();
    const t0 = performance.now();
    try {
      const lib = await page.loadLibrary();
      status('loading the model into this browser…');
      const mg = await page.loadBrowserModel();
      status('decoding the clips…');
      const clips = [];
      for (const c of ft.clips) {
        const a = await lib.decodeAudio(c.bytes, c.name);
        clips.push({ name: c.name, caption: c.caption.trim(), audio: a.channels, sampleRate: a.sampleRate });
      }
      const seed = number('ft-seed');
      const result = await lib.finetune(mg, clips, {
        steps: number('ft-steps'),
        lr: number('ft-lr'),
        loraRank: number('ft-rank'),
        seed: seed === undefined || seed < 0 ? undefined : seed,
        baseModel: page.modelName,
        signal: ft.abort.signal,
        onProgress: (p) => {
          if (p.stage === 'prepare') status(`encoding the clips: ${p.done} of ${p.total}`);
          else {
            ft.losses.push(p.loss);
            drawLoss();
            log(`step ${p.step}: loss ${p.loss.toFixed(4)}, lr ${p.lr.toExponential(2)}, grad norm ${p.gradNorm.toFixed(3)}`);
            status(`training: step ${p.step} of ${p.totalSteps}, loss ${p.loss.toFixed(4)}`);
          }
        },
      });
      status('loading the fine-tuned model…');
      // the adapter merged into the weights as they load (from this browser's cache), as Node loads the download
      ft.tuned?.dispose();
      ft.tuned = null;
      ft.tuned = await lib.MusicGen.load(page.modelUrl, { adapter: result.adapter });
      if (ft.adapterUrl) URL.revokeObjectURL(ft.adapterUrl);
      ft.adapterUrl = URL.createObjectURL(new Blob([result.adapter.weights], { type: 'application/octet-stream' }));
      const a = $('ft-download');
      a.href = ft.adapterUrl;
      a.hidden = false;
      $('ft-generate').disabled = false;
      const seconds = (performance.now() - t0) / 1000;
      status(`trained ${result.steps} steps in ${seconds.toFixed(1)} s (seed ${result.options.seed}), last loss ${result.lastLoss.toFixed(4)}; generate with it from the form above`);
      page.appendLog(`fine-tuned in this browser: ${result.steps} steps, LoRA rank ${result.options.loraRank}, losses ${result.log.map((l) => l.loss.toFixed(4)).join(' ')}`);
    } catch (e) {
      if (e && e.name === 'AbortError') status(`canceled after ${ft.losses.length} step(s)`);
      else {
        status(`error: ${e.message}`);
        page.appendLog(String(e.stack || e));
      }
    } finally {
      ft.abort = null;
      page.state.training = false;
      $('ft-cancel').disabled = true;
      $('generate').disabled = false;
      $('ft-generate').disabled = ft.tuned === null;
      render();
    }
  }

  const drop = $('ft-drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    void addFiles(e.dataTransfer.files);
  });
  $('ft-files').addEventListener('change', (e) => {
    void addFiles(e.target.files).then(() => { e.target.value = ''; });
  });
  $('ft-train').addEventListener('click', () => void train());
  $('ft-cancel').addEventListener('click', () => {
    status('canceling after this step…');
    ft.abort?.abort();
  });
  $('ft-generate').addEventListener('click', () => { if (ft.tuned) void page.generate(null, ft.tuned); });
  $('ft-clear').addEventListener('click', () => {
    ft.clips = [];
    ft.captions.clear();
    status('');
    render();
  });
  drawLoss();
  render();
}
