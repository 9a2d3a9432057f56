// robot_twin dashboard: live view of the hub's state over server-sent events (/api/v1/stream).
// Plain JavaScript, no external resources; the plots are drawn on canvases here.
'use strict';

const API = '/api/v1';
const WINDOW_S = 20;                 // seconds of effort history in each plot
const cards = {};                    // joint name -> {root, canvas, ...}
const buffers = {};                  // joint name -> {measured: [[t, v]], predicted: [[t, v]]}
let jointNames = [];
let writesEnabled = false;
let latestStamp = null;
let drawPending = false;
let correctiveEnabled = null;        // the bridge's corrective_actions.enabled: true, false, null

const $ = (id) => document.getElementById(id);

function fmt(value, digits = 2) {
  return value === null || value === undefined || Number.isNaN(value) ? '–' : Number(value).toFixed(digits);
}

function clockTime(epochS) {
  if (epochS === null || epochS === undefined) return '';
  return new Date(epochS * 1000).toLocaleTimeString();
}

function setLevel(el, level) {
  el.textContent = level || '–';
  el.className = 'level ' + (level || '');
}

function buildCards(names) {
  const container = $('joints');
  container.textContent = '';
  const template = $('joint-card');
  for (const name of names) {
    const root = template.content.firstElementChild.cloneNode(true);
    root.dataset.joint = name;
    root.querySelector('.name').textContent = name;
    container.appendChild(root);
    const q = (sel) => root.querySelector(sel);
    cards[name] = {root, canvas: q('.plot'), level: q('.level'), measured: q('.effort-measured'),
                   predicted: q('.effort-predicted'), residual: q('.effort-residual'),
                   position: q('.position'), fault: q('.fault'), since: q('.since'),
                   rul: q('.rul'), advice: q('.advice')};
    buffers[name] = {measured: [], predicted: []};
  }
  jointNames = names.slice();
}

function addSeries(series) {
  for (const kind of ['measured', 'predicted']) {
    for (const [stamp, efforts] of series[kind] || []) {
      jointNames.forEach((name, i) => {
        if (efforts[i] !== null) buffers[name][kind].push([stamp, efforts[i]]);
      });
      if (kind === 'measured' && (latestStamp === null || stamp > latestStamp)) latestStamp = stamp;
    }
  }
  if (latestStamp !== null) {
    for (const name of jointNames) {
      for (const kind of ['measured', 'predicted']) {
        const buf = buffers[name][kind];
        let drop = 0;
        while (drop < buf.length && buf[drop][0] < latestStamp - WINDOW_S) drop++;
        if (drop) buf.splice(0, drop);
      }
    }
  }
  if (!drawPending) {
    drawPending = true;
    requestAnimationFrame(drawAll);
  }
}

function drawAll() {
  drawPending = false;
  for (const name of jointNames) drawPlot(cards[name].canvas, buffers[name]);
}

function drawPlot(canvas, buf) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width, h = canvas.height, pad = 4;
  ctx.clearRect(0, 0, w, h);
  const all = buf.measured.concat(buf.predicted);
  if (!all.length || latestStamp === null) return;
  let lo = Infinity, hi = -Infinity;
  for (const [, v] of all) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const span = Math.max(hi - lo, 0.5);
  lo -= 0.1 * span; hi += 0.1 * span;
  const t0 = latestStamp - WINDOW_S;
  const x = (t) => pad + (w - 2 * pad) * (t - t0) / WINDOW_S;
  const y = (v) => h - pad - (h - 2 * pad) * (v - lo) / (hi - lo);
  ctx.strokeStyle = '#ddd';
  ctx.lineWidth = 1;
  if (lo < 0 && hi > 0) { ctx.beginPath(); ctx.moveTo(pad, y(0)); ctx.lineTo(w - pad, y(0)); ctx.stroke(); }
  ctx.fillStyle = '#888';
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillText(fmt(hi, 1), pad + 2, pad + 10);
  ctx.fillText(fmt(lo, 1), pad + 2, h - pad - 2);
  const style = getComputedStyle(document.documentElement);
  for (const [kind, dash] of [['predicted', [5, 3]], ['measured', []]]) {
    const points = buf[kind];
    if (!points.length) continue;
    ctx.strokeStyle = style.getPropertyValue('--' + kind).trim();
    ctx.lineWidth = 1.6;
    ctx.setLineDash(dash);
    ctx.beginPath();
    points.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
  }
  ctx.setLineDash([]);
}

function sinceText(since) {
  if (since === null || since === undefined) return '';
  const ago = latestStamp !== null ? ` (${fmt(latestStamp - since, 1)} s ago)` : '';
  return `since ${clockTime(since)}${ago}`;
}

function renderCorrective(corr) {
  correctiveEnabled = corr.enabled === true || corr.enabled === false ? corr.enabled : null;
  $('corrective-state').textContent = correctiveEnabled === null ? 'unknown' : (correctiveEnabled ? 'ON' : 'off');
  $('corrective-state').title = corr.error || '';
  // no switch from an unknown state: each button only where it changes something known
  $('corrective-on').disabled = correctiveEnabled !== false;
  $('corrective-off').disabled = correctiveEnabled !== true;
  const why = correctiveEnabled === null ? `state unknown${corr.error ? ': ' + corr.error : ''}` : '';
  $('corrective-on').title = why;
  $('corrective-off').title = why;
}

function renderHealth(health) {
  const ok = health && health.status === 'ok';
  setLevel($('data-level'), health ? (ok ? 'OK' : 'STALE') : '');
  $('data-detail').textContent = health ? (ok ? 'live' : health.reasons.join('; ')) : '';
  return ok;
}

function renderState(s) {
  $('robot').textContent = s.robot;
  const sync = s.sync;
  setLevel($('sync-level'), sync.level);
  const p99 = sync.latency_p99_s;
  $('sync-detail').textContent = (p99 !== null && !sync.stale ? `p99 ${fmt(p99 * 1000, 2)} ms ` : '') + sync.message;
  setLevel($('anomaly-level'), s.anomaly.level);
  $('anomaly-message').textContent = s.anomaly.message;
  renderCorrective(s.corrective);
  dataLive = renderHealth(s.health);
  for (const j of s.joints) {
    const c = cards[j.name];
    if (!c) continue;
    const a = j.anomaly;
    const level = a ? a.level : 'STALE';
    setLevel(c.level, level);
    c.root.classList.toggle('ERROR', level === 'ERROR');
    const m = j.measured;
    const stale = !m || m.stale;
    c.root.classList.toggle('stale', stale);
    let note = c.root.querySelector('.stale-note');
    if (!note) {
      note = document.createElement('p');
      note.className = 'stale-note';
      c.root.querySelector('header').after(note);
    }
    note.textContent = !m ? 'no data yet' : (m.stale ? `stale: no sample for ${fmt(m.age_s, 1)} s` : '');
    c.measured.textContent = fmt(j.measured && j.measured.effort);
    c.predicted.textContent = fmt(j.predicted && j.predicted.effort);
    c.residual.textContent = fmt(j.residual && j.residual.effort);
    c.position.textContent = j.measured ? `${fmt(j.measured.position, 3)} rad, ${fmt(j.measured.velocity, 3)} rad/s` : '–';
    const faulty = a && level !== 'OK' && a.fault_type && a.fault_type !== 'none';
    c.fault.textContent = faulty ? `${a.fault_type} (score ${fmt(a.score)} / ${fmt(a.threshold)})` : (a ? a.message : '–');
    c.since.textContent = faulty ? sinceText(a.since) : '';
    const r = j.rul;
    if (!r) c.rul.textContent = '–';
    else if (r.rul_hours === null || r.rul_hours === undefined) c.rul.textContent = `no estimate yet${r.message ? ' (' + r.message + ')' : ''}`;
    else c.rul.textContent = `${fmt(r.rul_hours, 0)} h [${fmt(r.rul_lower_hours, 0)}–${fmt(r.rul_upper_hours, 0)}], health ${fmt(r.health_index)}`;
    c.advice.textContent = r ? `${r.recommended_action || '–'}${r.due_by ? ' (due by ' + r.due_by + ')' : ''}` : '–';
  }
}

function renderEvents(ev) {
  const body = $('anomalies').querySelector('tbody');
  body.textContent = '';
  for (const e of ev.anomalies.episodes.slice(0, 50)) {
    const row = body.insertRow();
    row.className = e.active ? 'active' : '';
    row.dataset.episode = e.id;
    const status = e.status || (e.active ? 'active' : 'cleared');
    const shown = e.active ? 'ACTIVE' : status;
    const state = e.acknowledged_at ? `ack ${clockTime(e.acknowledged_at)}, ${shown}` : shown;
    for (const text of [e.id, e.joint, e.fault_type, clockTime(e.since), fmt(e.peak_score), state]) {
      row.insertCell().textContent = text;
    }
    const cell = row.insertCell();
    if (writesEnabled && !e.acknowledged_at) {
      const button = document.createElement('button');
      button.textContent = 'ack';
      button.onclick = () => write('POST', `${API}/anomalies/${e.id}/acknowledge`, {note: 'dashboard'});
      cell.appendChild(button);
    }
  }
  $('anomalies-empty').hidden = ev.anomalies.episodes.length > 0;
  const ledger = $('ledger');
  ledger.textContent = '';
  for (const entry of ev.ledger.entries.slice().reverse()) {
    const li = document.createElement('li');
    const when = entry.wall_time || entry.time || entry.timestamp;
    const kind = entry.kind || entry.event || entry.type || '';
    li.textContent = `${when ? clockTime(Number(when)) + ' ' : ''}${kind} ${JSON.stringify(entry.data || entry)}`;
    ledger.appendChild(li);
  }
  $('ledger-empty').hidden = ev.ledger.entries.length > 0;
  $('ledger-empty').textContent = ev.ledger.error || (ev.ledger.path ? 'The log is empty.' : 'No lifecycle log configured.');
  const jobs = $('jobs').querySelector('tbody');
  jobs.textContent = '';
  for (const job of ev.jobs.slice(0, 10)) {
    const row = jobs.insertRow();
    const alarms = job.digest && job.digest.alarms ? `, alarms ${job.digest.alarms.count}/${job.digest.samples}` : '';
    row.insertCell().textContent = `${job.scenario} x${job.samples}`;
    row.insertCell().textContent = job.status + alarms + (job.error ? ` (${job.error})` : '');
    const link = row.insertCell();
    if (job.files.includes('summary.json')) {
      const a = document.createElement('a');
      a.href = `${API}/whatif/jobs/${job.id}/files/summary.json`;
      a.textContent = 'summary';
      link.appendChild(a);
    }
  }
  $('jobs-empty').hidden = ev.jobs.length > 0;
}

async function write(method, url, body) {
  const token = $('token').value || sessionStorage.getItem('robot_twin_token') || '';
  sessionStorage.setItem('robot_twin_token', token);
  const response = await fetch(url, {method, headers: {'Content-Type': 'application/json', 'Authorization': `Bearer ${token}`,
                                                       'X-Robot-Twin-Interface': 'dashboard'},
                                     body: JSON.stringify(body)});
  const data = await response.json().catch(() => ({}));
  $('action-result').textContent = response.ok ? 'done' : `${response.status}: ${typeof data.detail === 'string' ? data.detail : JSON.stringify(data.detail)}`;
}

async function setUpWrites() {
  const health = await (await fetch(`${API}/health`)).json();
  writesEnabled = health.writes_enabled;
  $('writes-note').textContent = writesEnabled ? 'Writes need the hub\'s bearer token.' : 'Read-only (the hub has no token file).';
  $('token-row').hidden = !writesEnabled;
  $('token').value = sessionStorage.getItem('robot_twin_token') || '';
  $('corrective-buttons').hidden = !writesEnabled;
  $('corrective-on').onclick = () => {
    if (correctiveEnabled !== false) return;        // only from a known 'off'
    if (!window.confirm('Turn corrective actions ON? twin_bridge may then command the robot '
                        + '(its governor checks every command).')) {
      $('action-result').textContent = 'corrective actions left off';
      return;
    }
    write('PUT', `${API}/corrective-actions`, {enabled: true});
  };
  $('corrective-off').onclick = () => {
    if (correctiveEnabled !== true) return;         // only from a known 'ON'
    write('PUT', `${API}/corrective-actions`, {enabled: false});
  };
  if (writesEnabled) {
    const joints = $('maintenance-joint');
    for (const name of health.joints) joints.add(new Option(name, name));
    $('maintenance').hidden = false;
    $('maintenance-form').onsubmit = (event) => {
      event.preventDefault();
      const action = $('maintenance-action').value;
      if (!window.confirm(`Declare "${action}" done on ${joints.value}? The twin then learns `
                          + 'its health anew (recorded in the lifecycle log).')) return;
      write('POST', `${API}/maintenance`, {joint: joints.value, action, note: $('maintenance-note').value});
    };
    const names = await (await fetch(`${API}/whatif/scenarios`)).json();
    const select = $('whatif-scenario');
    for (const name of names) select.add(new Option(name, name));
    $('whatif-form').hidden = names.length === 0;
    $('whatif-form').onsubmit = (event) => {
      event.preventDefault();
      write('POST', `${API}/whatif/jobs`, {scenario: select.value, samples: Number($('whatif-samples').value)});
    };
  }
}

let dataLive = false;                // the hub's health: ok (live) or degraded (stale data)

function connect() {
  const source = new EventSource(`${API}/stream`);
  const status = (text, cls) => { $('connection-text').textContent = text; $('connection-dot').className = 'dot ' + cls; };
  const shown = () => (dataLive ? status('live', 'live') : status('connected, data stale', 'stale'));
  source.addEventListener('snapshot', (msg) => {
    const data = JSON.parse(msg.data);
    buildCards(data.state.joint_names);
    latestStamp = null;
    addSeries(data.series);
    renderState(data.state);
    renderEvents(data.state);
    shown();
  });
  source.addEventListener('update', (msg) => {
    const data = JSON.parse(msg.data);
    addSeries(data.series);
    renderState(data.state);
    if (data.events) renderEvents(data.events);
    shown();
  });
  source.onerror = () => status('reconnecting', 'lost');
}

setUpWrites().catch((err) => { $('writes-note').textContent = `cannot read ${API}/health: ${err}`; });
connect();
