// The hub's web UI (docs/hub.md, "Web UI"): vanilla JavaScript over the hub's JSON API.
// The login's token lives in sessionStorage (gone when the tab closes) and goes with every call
// as a bearer token. Everything the hub returns is untrusted: it is written into the page with
// textContent and DOM nodes only, never as HTML. The API refuses what a role may not do; the
// page also hides the buttons the role may not use.
'use strict';

const session = {
  get token() { return sessionStorage.getItem('vigil.token'); },
  get user() { return sessionStorage.getItem('vigil.user') || ''; },
  get role() { return sessionStorage.getItem('vigil.role') || ''; },
  save(answer) {
    sessionStorage.setItem('vigil.token', answer.token);
    sessionStorage.setItem('vigil.user', answer.user);
    sessionStorage.setItem('vigil.role', answer.role);
    sessionStorage.setItem('vigil.expires', String(answer.expires));
  },
  clear() { sessionStorage.clear(); },
};
const ROLE_RANK = { viewer: 0, analyst: 1, admin: 2 };
const may = (role) => (ROLE_RANK[session.role] ?? -1) >= ROLE_RANK[role];

// el('td', {className: 'num'}, 'text', node, ...): children that are strings become text nodes.
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
const view = () => document.getElementById('view');
// Replaces the page's content; null and undefined (a part a role does not get) are left out.
function show(...nodes) { view().replaceChildren(...nodes.filter((n) => n !== null && n !== undefined)); }
const time = (ms) => (ms ? new Date(ms).toISOString().replace('T', ' ').replace('Z', ' UTC') : '');
const fixed = (x, n = 2) => (typeof x === 'number' ? x.toFixed(n) : '—');

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (session.token) headers.Authorization = 'Bearer ' + session.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'omit', cache: 'no-store',
  });
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const message = data && data.error ? data.error.message : 'HTTP ' + res.status;
    if (res.status === 401 && path !== '/v1/login') {
      session.clear();
      login('Your session ended (' + message + '): log in again.');
    }
    throw new ApiError(res.status, message);
  }
  return data;
}

function errorBox(err) {
  return el('p', { className: 'error', role: 'alert' }, err instanceof Error ? err.message : String(err));
}

// ---- login ----
function login(message) {
  stopPolling();
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('who').textContent = '';
  const user = el('input', { id: 'user', name: 'user', autocomplete: 'username', required: true });
  const password = el('input', {
    id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true,
  });
  const status = el('div', { id: 'login-error' });
  if (message) status.append(errorBox(message));
  const form = el('form', { className: 'login', id: 'login-form' },
    el('h1', {}, 'Log in to the hub'),
    el('label', { htmlFor: 'user' }, 'User'), user,
    el('label', { htmlFor: 'password' }, 'Password'), password,
    el('button', { className: 'primary', type: 'submit', id: 'login-submit' }, 'Log in'),
    status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    status.replaceChildren();
    try {
      const answer = await api('POST', '/v1/login', { user: user.value, password: password.value });
      session.save(answer);
      password.value = '';
      if (!location.hash || location.hash === '#/login') location.hash = '#/incidents';
      else route();
    } catch (err) {
      password.value = '';
      status.append(errorBox(err));
    }
  });
  show(form);
  user.focus();
}

// ---- incidents ----
function triageCell(i) {
  if (i.triage === 'suppressed') return el('span', { className: 'label suppressed', title: 'triage score ' + fixed(i.triage_score) }, 'suppressed');
  if (i.triage === 'kept') return el('span', {}, fixed(i.triage_score));
  return el('span', { className: 'muted' }, '–');
}
async function incidents() {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const open = q.get('open') === '1';
  const triage = q.get('triage');  // "kept", "suppressed" or none
  const data = await api('GET', '/v1/incidents?limit=200' + (open ? '&adjudicated=false' : '') +
    (triage === 'kept' ? '&suppressed=false' : triage === 'suppressed' ? '&suppressed=true' : ''));
  const rows = data.incidents.map((i) => el('tr', { dataset: { incident: i.id } },
    el('td', {}, el('a', { href: '#/incidents/' + i.id }, '#' + i.id)),
    el('td', {}, i.host),
    el('td', {}, i.process + ' (' + i.pid + ')'),
    el('td', {}, time(i.first_ms)),
    el('td', { className: 'num' }, i.alerts),
    el('td', { className: 'num' }, fixed(i.max_score)),
    el('td', { className: 'triage' }, triageCell(i)),
    el('td', {}, i.label ? el('span', { className: 'label ' + i.label }, i.label) : el('span', { className: 'muted' }, 'open'))));
  show(
    el('h1', {}, 'Incidents'),
    el('div', { className: 'actions' },
      el('a', { href: '#/incidents' }, 'All'), el('a', { href: '#/incidents?open=1' }, 'Not adjudicated'),
      el('a', { href: '#/incidents?open=1&triage=kept' }, 'Kept by triage'),
      el('a', { href: '#/incidents?triage=suppressed' }, 'Suppressed by triage')),
    rows.length === 0 ? el('p', { className: 'muted' }, 'No incidents.') :
      el('table', { id: 'incidents' },
        el('thead', {}, el('tr', {}, ...['Incident', 'Host', 'Process', 'First seen', 'Alerts', 'Max score', 'Triage', 'Label']
          .map((h) => el('th', {}, h)))),
        el('tbody', {}, ...rows)));
}

function alertCard(a) {
  const what = a.kind === 'decision' ? 'rule ' + a.rule + (a.action ? ' → ' + a.action : '')
    : 'model ' + a.model + (a.model_version ? ' ' + a.model_version : '');
  const expl = Array.isArray(a.explanation) && a.explanation.length > 0
    ? el('ul', { className: 'explanation' }, ...a.explanation.map((e) =>
      el('li', {}, String(e.what), ' ', el('span', { className: 'muted' }, '(weight ' + fixed(e.weight) + ')'))))
    : null;
  return el('div', { className: 'alert', dataset: { alert: a.id } },
    el('div', { className: 'head' },
      el('span', {}, a.kind), el('span', {}, what), el('span', {}, 'score ' + fixed(a.score)),
      el('span', { className: 'muted' }, time(a.time_ms))),
    a.title ? el('div', {}, a.title) : null,
    a.message ? el('div', {}, a.message) : null,
    expl ? el('div', {}, el('strong', {}, 'Explanation'), expl) : null);
}

async function incident(id) {
  const data = await api('GET', '/v1/incidents/' + encodeURIComponent(id));
  const i = data.incident;
  const facts = el('dl', { className: 'facts' });
  const fact = (k, v) => facts.append(el('dt', {}, k), el('dd', {}, v));
  fact('Host', el('a', { href: '#/agents/' + encodeURIComponent(i.host), title: 'the agent and its audit checkpoints' }, i.host));
  fact('Process', i.process + ' (pid ' + i.pid + ')');
  fact('Span', time(i.first_ms) + ' – ' + time(i.last_ms));
  // In the detail, "alerts" is the list of findings (the list page has their count).
  fact('Findings', i.alerts.length + ' (' + i.verdicts + ' model verdicts, ' + i.decisions + ' rule decisions)');
  fact('Max score', fixed(i.max_score));
  fact('Triage', i.triage ? el('span', { id: 'incident-triage' }, (i.triage === 'suppressed' ? 'suppressed by triage' : 'kept by triage') +
    ' (score ' + fixed(i.triage_score) + ')') : el('span', { className: 'muted' }, 'not scored'));
  const labelNode = el('span', { id: 'incident-label' });
  const renderLabel = (x) => labelNode.replaceChildren(x.label
    ? el('span', { className: 'label ' + x.label }, x.label + ' by ' + x.labelled_by + (x.note ? ' — ' + x.note : ''))
    : el('span', { className: 'muted' }, 'not adjudicated'));
  renderLabel(i);
  fact('Label', labelNode);
  const parts = [el('p', {}, el('a', { href: '#/incidents' }, '← Incidents')),
    el('h1', {}, 'Incident #' + i.id), facts];
  if (may('analyst')) {
    const note = el('input', { id: 'note', placeholder: 'note (optional)', maxLength: 1000 });
    const status = el('div', { id: 'adjudicate-status' });
    const button = (label, text, cls) => el('button', {
      type: 'button', className: cls, dataset: { label },
      onclick: async () => {
        status.replaceChildren();
        try {
          const answer = await api('POST', '/v1/incidents/' + i.id + '/adjudication', { label, note: note.value });
          renderLabel(answer.incident);
          status.append(el('span', { className: 'muted' }, 'Saved: ' + answer.incident.label));
        } catch (err) { status.append(errorBox(err)); }
      },
    }, text);
    parts.push(el('h2', {}, 'Adjudicate'), el('div', { className: 'actions', id: 'adjudicate' },
      button('true_positive', 'True positive', 'danger'), button('false_positive', 'False positive'),
      button('benign', 'Benign'), note), status);
  }
  parts.push(el('h2', {}, 'Findings'), ...i.alerts.map(alertCard));
  show(...parts);
}

// ---- escalations ----
let pollTimer = null;
function stopPolling() { if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; } }

async function escalations() {
  const all = new URLSearchParams(location.hash.split('?')[1] || '').get('all') === '1';
  const status = el('div', { id: 'escalation-status' });
  const table = el('tbody');
  show(el('h1', {}, 'Escalations'),
    el('div', { className: 'actions' },
      el('a', { href: '#/escalations' }, 'Pending'), el('a', { href: '#/escalations?all=1' }, 'All'),
      el('span', { className: 'muted' }, 'refreshed every 2 s')),
    status,
    el('table', { id: 'escalations' },
      el('thead', {}, el('tr', {}, ...['#', 'Host', 'Process', 'Rule', 'Proposed action', 'Reason', 'Deadline', 'Default', 'State', '']
        .map((h) => el('th', {}, h)))), table));
  const decide = async (e, decision) => {
    status.replaceChildren();
    try {
      await api('POST', '/v1/escalations/' + e.id + '/decision', { decision });
      status.append(el('span', { className: 'muted' }, 'Escalation #' + e.id + ': ' + decision + ' sent'));
    } catch (err) { status.append(errorBox(err)); }
    refresh();
  };
  const refresh = async () => {
    stopPolling();
    if (!location.hash.startsWith('#/escalations')) return;
    try {
      const data = await api('GET', '/v1/escalations?state=' + (all ? 'all' : 'pending'));
      table.replaceChildren(...data.escalations.map((e) => {
        const cell = el('td', {});
        if (e.state === 'pending' && may('analyst')) {
          cell.append(el('button', { type: 'button', className: 'primary', dataset: { decision: 'approve' }, onclick: () => decide(e, 'approve') }, 'Approve'),
            ' ', el('button', { type: 'button', dataset: { decision: 'deny' }, onclick: () => decide(e, 'deny') }, 'Deny'));
        } else if (e.outcome) {
          cell.append(e.outcome + (e.decided_by ? ' by ' + e.decided_by : ''));
        }
        return el('tr', { dataset: { escalation: e.id } },
          el('td', {}, e.id), el('td', {}, e.host), el('td', {}, e.process ? e.process + ' (' + e.pid + ')' : 'pid ' + e.pid),
          el('td', {}, e.rule), el('td', {}, e.action), el('td', {}, e.reason),
          el('td', {}, time(e.deadline_ms)), el('td', {}, e.default), el('td', {}, e.state), cell);
      }));
      if (data.escalations.length === 0) {
        table.append(el('tr', {}, el('td', { colSpan: 10, className: 'muted' }, all ? 'No escalations.' : 'No escalation is waiting.')));
      }
    } catch (err) {
      if (err.status === 401) return;
      status.replaceChildren(errorBox(err));
    }
    pollTimer = setTimeout(refresh, 2000);
  };
  await refresh();
}

// ---- agents ----
const opt = (v) => (v === undefined || v === null || v === '' ? '-' : String(v));
// How long ago `ms` was, in words ("-" when never).
function ago(ms) {
  if (!ms) return '-';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return s + ' s ago';
  if (s < 7200) return Math.round(s / 60) + ' min ago';
  if (s < 172800) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' days ago';
}
const applied = (a) => (a && a.version ? a.version : '-');
const short = (hex) => (typeof hex === 'string' && hex.length > 16 ? hex.slice(0, 16) + '…' : opt(hex));
function attestationLabel(a) {
  const state = a && a.attestation ? a.attestation.state : '';
  return state ? el('span', { className: 'label att-' + state, title: a.attestation.reason || '' }, state) : '-';
}
async function agents() {
  if (!may('admin')) {
    show(el('h1', {}, 'Agents'), el('p', { className: 'notice' }, 'Only admins see the agents list; an agent\'s audit ' +
      'checkpoints are on its page (linked from its incidents).'));
    return;
  }
  const data = await api('GET', '/v1/agents');
  show(el('h1', {}, 'Agents'),
    el('p', { className: 'notice' }, 'Registered agents show their group, mode, versions, attestation and what their last ' +
      'heartbeat reported; hosts that only posted findings show "-". Open a host for its details and audit checkpoints. ' +
      'Rollouts are listed by vigil hub rollout list, not here.'),
    el('table', { id: 'agents' },
      el('thead', {}, el('tr', {}, ...['Host', 'Group', 'Mode', 'Vigil', 'Policy', 'Model', 'Attestation', 'Events/s',
        'Drops', 'Alerts', 'Last heartbeat', 'Last seen', 'Messages', 'Findings'].map((h) => el('th', {}, h)))),
      el('tbody', {}, ...data.agents.map((a) => {
        const h = a.health || null;
        return el('tr', { dataset: { agent: a.host } },
          el('td', {}, el('a', { href: '#/agents/' + encodeURIComponent(a.host) }, a.host)),
          el('td', {}, opt(a.group)), el('td', {}, opt(a.mode)), el('td', {}, opt(a.vigil_version)),
          el('td', {}, applied(a.policy)), el('td', {}, applied(a.model)),
          el('td', {}, attestationLabel(a)),
          el('td', { className: 'num' }, h ? fixed(h.events_per_s, 1) : '-'),
          el('td', { className: 'num' + (h && h.drops > 0 ? ' warn' : '') }, h ? h.drops : '-'),
          el('td', { className: 'num' }, h ? h.alerts : '-'),
          el('td', { title: time(a.last_heartbeat_ms) }, ago(a.last_heartbeat_ms)),
          el('td', { title: time(a.last_seen_ms) }, ago(a.last_seen_ms)),
          el('td', { className: 'num' }, a.messages), el('td', { className: 'num' }, a.findings));
      }))));
}

// One host: what its registration and last heartbeat reported (admins: GET /v1/agents) and the
// audit checkpoints the hub holds for it (viewers: GET /v1/agents/HOST/checkpoints).
async function agent(host) {
  const [list, cps] = await Promise.all([
    may('admin') ? api('GET', '/v1/agents') : Promise.resolve(null),
    api('GET', '/v1/agents/' + encodeURIComponent(host) + '/checkpoints?limit=200')]);
  const parts = [el('p', {}, may('admin') ? el('a', { href: '#/agents' }, '← Agents') : null), el('h1', {}, 'Agent ' + host)];
  const a = list ? list.agents.find((x) => x.host === host) : null;
  if (!list) {
    parts.push(el('p', { className: 'notice' }, 'Only admins see an agent\'s health, versions and attestation.'));
  } else if (!a) {
    parts.push(el('p', { className: 'muted' }, 'The hub has no registration, heartbeat or finding from this host.'));
  } else {
    const facts = el('dl', { className: 'facts', id: 'agent-facts' });
    const fact = (k, v) => facts.append(el('dt', {}, k), el('dd', {}, v));
    const h = a.health || null;
    fact('Registered', a.registered ? 'yes, ' + time(a.registered_ms) : 'no (only findings)');
    fact('Group / mode', opt(a.group) + ' / ' + opt(a.mode));
    fact('Vigil version', opt(a.vigil_version));
    fact('Policy in force', a.policy ? applied(a.policy) + (a.policy.digest ? ' (sha256 ' + short(a.policy.digest) + ')' : '') : '-');
    fact('Gate model in force', a.model ? applied(a.model) + (a.model.digest ? ' (sha256 ' + short(a.model.digest) + ')' : '') : '-');
    fact('Attestation', el('span', {}, attestationLabel(a), a.attestation && a.attestation.reason ? ' ' + a.attestation.reason : ''));
    fact('Last heartbeat', a.last_heartbeat_ms ? time(a.last_heartbeat_ms) + ' (' + ago(a.last_heartbeat_ms) + ')' : 'none yet');
    fact('Health (last heartbeat)', h ? el('span', { id: 'agent-health' }, fixed(h.events_per_s, 1) + ' events/s, ' + h.drops +
      ' events dropped, ' + h.alerts + ' alerts (counts since the agent started)') : 'no heartbeat has reported it');
    fact('Last seen', a.last_seen_ms ? time(a.last_seen_ms) + ' (' + a.messages + ' messages, ' + a.findings + ' findings)' : '-');
    fact('Addresses', Array.isArray(a.addresses) && a.addresses.length ? a.addresses.join(', ') : '-');
    fact('Last refused update', a.refusal ? el('span', { className: 'error', id: 'agent-refusal' }, a.refusal.kind + ' sha256 ' +
      short(a.refusal.digest) + ' at ' + time(a.refusal.time_ms) + ': ' + a.refusal.reason) : 'none');
    parts.push(facts);
  }
  const rows = cps.checkpoints;
  const count = (f) => rows.filter(f).length;
  const summary = el('p', { id: 'checkpoint-summary' },
    rows.length + ' checkpoints: ' + count((c) => c.verification === 'verified') + ' verified, ' +
    count((c) => c.verification === 'unverified') + ' unverified, ' + count((c) => c.verification === 'bad-signature') +
    ' bad signature; ' + count((c) => c.problem === 'fork') + ' forks, ' + count((c) => c.problem === 'rollback') + ' rollbacks.');
  const bad = count((c) => c.verification === 'bad-signature' || c.problem !== '');
  parts.push(el('h2', {}, 'Audit checkpoints'),
    el('p', { className: 'muted' }, 'Signed heads of the host\'s audit log, sent by its agent and kept here (docs/hub.md, ' +
      '"Audit checkpoints"). Verified: signed by the audit key the host registered. A fork (another chain for a record) or ' +
      'a rollback (sequence and time disagree) means the host\'s log was rewritten.'),
    el('p', {}, 'Registered audit key: ', cps.audit_key ? el('span', { id: 'audit-key' }, cps.audit_key.key_id + ' (since ' +
      time(cps.audit_key.registered_ms) + ')') : el('span', { className: 'muted', id: 'audit-key' }, 'none')),
    bad > 0 ? el('p', { className: 'error', role: 'alert', id: 'checkpoint-alarm' }, bad + ' checkpoints need attention.') : null,
    summary,
    rows.length === 0 ? el('p', { className: 'muted' }, 'No checkpoints from this host.') :
      el('table', { id: 'checkpoints' },
        el('thead', {}, el('tr', {}, ...['Seq', 'Covers', 'Chain hash', 'Signed at', 'Key', 'Verification', 'Problem', 'Received']
          .map((x) => el('th', {}, x)))),
        el('tbody', {}, ...rows.map((c) => el('tr', { dataset: { seq: c.seq, verification: c.verification, problem: c.problem } },
          el('td', { className: 'num' }, c.seq), el('td', { className: 'num' }, c.covers),
          el('td', { className: 'mono', title: c.chain_hash }, short(c.chain_hash)),
          el('td', {}, time(Math.floor(c.time_ns / 1e6))), el('td', {}, c.key_id),
          el('td', {}, el('span', { className: 'label cp-' + c.verification, title: c.reason || '' }, c.verification),
            c.verification !== 'verified' && c.reason ? el('div', { className: 'muted' }, c.reason) : null),
          el('td', {}, c.problem ? el('span', { className: 'label cp-problem' }, c.problem) : '',
            c.problem_detail ? el('div', { className: 'muted' }, c.problem_detail) : null),
          el('td', {}, time(c.received_ms)))))));
  show(...parts);
}

// ---- fleet incidents (the global model) ----
async function fleet() {
  const data = await api('GET', '/v1/fleet-incidents?limit=200');
  const rows = data.fleet_incidents.map((f) => el('tr', { dataset: { fleetIncident: f.id } },
    el('td', {}, '#' + f.id),
    el('td', {}, el('span', { className: 'label ' + f.kind }, f.kind)),
    el('td', {}, f.hosts.join(f.kind === 'chain' ? ' → ' : ', ')),
    el('td', {}, f.summary),
    el('td', {}, time(f.first_ms)),
    el('td', {}, time(f.last_ms))));
  show(el('h1', {}, 'Fleet incidents'),
    el('p', { className: 'muted' }, 'Raised by the hub\'s cross-host correlation: the same rare behaviour on several ' +
      'hosts within the window (spread), or a finding on one host that connected to another, followed by a finding ' +
      'there (chain).'),
    rows.length === 0 ? el('p', { className: 'muted' }, 'No fleet incidents.') :
      el('table', { id: 'fleet-incidents' },
        el('thead', {}, el('tr', {}, ...['Fleet incident', 'Kind', 'Hosts', 'Summary', 'First', 'Last']
          .map((h) => el('th', {}, h)))),
        el('tbody', {}, ...rows)));
}

// ---- models ----
function bar(x) {
  const tenth = typeof x === 'number' ? Math.max(0, Math.min(10, Math.round(x * 10))) : 0;
  return el('span', { className: 'bar w' + tenth });
}
const SVG = 'http://www.w3.org/2000/svg';
// An SVG element with attributes (presentation attributes only: the CSP allows no inline style).
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
// Bars of the score histogram over [0, 1].
function histogramPlot(counts) {
  const w = 360, h = 120, pad = 18, max = Math.max(1, ...counts), bw = (w - 2 * pad) / counts.length;
  const bars = counts.map((c, i) => {
    const bh = (h - 2 * pad) * c / max;
    return svg('rect', { x: pad + i * bw + 1, y: h - pad - bh, width: Math.max(1, bw - 2), height: bh, class: 'hbar' },
      svg('title', {}, (i / counts.length).toFixed(2) + '–' + ((i + 1) / counts.length).toFixed(2) + ': ' + c));
  });
  return svg('svg', { viewBox: '0 0 ' + w + ' ' + h, width: w, height: h, class: 'plot', role: 'img',
    'aria-label': 'score distribution' },
  svg('line', { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, class: 'axis' }),
  ...bars,
  svg('text', { x: pad, y: h - 4, class: 'tick' }, '0'),
  svg('text', { x: w - pad - 6, y: h - 4, class: 'tick' }, '1'),
  svg('text', { x: pad, y: 12, class: 'tick' }, 'max ' + max));
}
// PSI per time bucket, with the 0.1 and 0.25 rules of thumb.
function driftPlot(drift) {
  const w = 360, h = 120, pad = 18;
  const psis = drift.map((d) => d.psi).filter((p) => typeof p === 'number');
  const top = Math.max(0.3, ...psis);
  const x = (i) => pad + (drift.length > 1 ? i * (w - 2 * pad) / (drift.length - 1) : (w - 2 * pad) / 2);
  const y = (p) => h - pad - (h - 2 * pad) * Math.min(p, top) / top;
  const points = drift.map((d, i) => (typeof d.psi === 'number' ? [x(i), y(d.psi), d] : null)).filter(Boolean);
  const guide = (p, cls) => svg('line', { x1: pad, y1: y(p), x2: w - pad, y2: y(p), class: cls });
  return svg('svg', { viewBox: '0 0 ' + w + ' ' + h, width: w, height: h, class: 'plot', role: 'img',
    'aria-label': 'score drift (PSI)' },
  svg('line', { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, class: 'axis' }),
  guide(0.1, 'guide'), guide(0.25, 'guide alarm'),
  points.length > 1 ? svg('polyline', { points: points.map((p) => p[0] + ',' + p[1]).join(' '), class: 'psi' }) : '',
  ...points.map((p) => svg('circle', { cx: p[0], cy: p[1], r: 3, class: 'psi-dot' },
    svg('title', {}, time(p[2].start_ms) + ': PSI ' + p[2].psi.toFixed(3) + ' (' + p[2].count + ' scores)'))),
  svg('text', { x: pad, y: 12, class: 'tick' }, 'PSI (0.1, 0.25 marked)'));
}
function missedForm(done) {
  const host = el('input', { name: 'host', placeholder: 'host', required: true });
  const kind = el('select', { name: 'kind' }, el('option', { value: 'rule' }, 'rule'), el('option', { value: 'model' }, 'model'));
  const name = el('input', { name: 'name', placeholder: 'rule or model name', required: true });
  const when = el('input', { name: 'time', type: 'datetime-local', required: true });
  const note = el('input', { name: 'note', placeholder: 'note' });
  const status = el('span', {});
  const form = el('form', { className: 'actions', id: 'missed' }, 'Record a missed detection:', host, kind, name, when, note,
    el('button', { type: 'submit', className: 'primary' }, 'Record'), status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { host: host.value, time_ms: Date.parse(when.value + 'Z'), note: note.value };
    body[kind.value] = name.value;
    try {
      await api('POST', '/v1/missed-detections', body);
      done();
    } catch (err) {
      status.replaceChildren(errorBox(err));
    }
  });
  return form;
}
// The hub's triage model (GET /v1/triage; 503 when the hub runs none) and, for admins, training.
function triageSection(t) {
  if (!t) return null;
  const status = el('span', {});
  const m = t.model;
  const v = t.volume;
  const button = el('button', { type: 'button', className: 'primary', id: 'triage-train' }, 'Train from adjudications');
  button.addEventListener('click', async () => {
    button.disabled = true;
    status.replaceChildren('training…');
    try {
      const r = await api('POST', '/v1/triage/train', {});
      const h = r.trained.metrics && r.trained.metrics.held_out;
      status.replaceChildren('trained ' + r.trained.path + (r.trained.activated ? ', in force' : '') +
        (h ? ' (held out: recall ' + fixed(h.recall) + ', ' + fixed(h.removed_fraction * 100) + '% suppressed)' : ''));
      route();
    } catch (err) {
      status.replaceChildren(errorBox(err));
      button.disabled = false;
    }
  });
  // What the threshold's figures say: for "held-out", each fold of the training's incidents judged
  // at the threshold chosen on the others (what to expect on new incidents); for "recall", the
  // store's adjudicated incidents (which may include those the model learnt from).
  let figures = '';
  if (v && t.threshold_source === 'held-out' && v.held_out) {
    const h = v.held_out;
    figures = '; held out (' + v.folds + ' folds): keeps ' + h.alerts_after + ' of ' + h.alerts_before + ' incidents (' +
      fixed(h.removed_fraction * 100) + '% suppressed) at recall ' + fixed(h.recall);
  } else if (v && v.alerts_before !== undefined) {
    figures = '; on the adjudicated incidents (possibly its training data) it keeps ' + v.alerts_after + ' of ' +
      v.alerts_before + ' (' + fixed(v.removed_fraction * 100) + '% removed) at recall ' + fixed(v.recall);
  }
  return el('div', { id: 'triage' },
    el('h2', {}, 'Triage model'),
    m ? el('p', { id: 'triage-model' }, m.path + ' (' + m.name + ' ' + m.version + ', key ' + m.key_id + '): threshold ' +
      fixed(t.threshold, 3) + ' (' + t.threshold_source + ', recall target ' + fixed(t.recall) + ')' + figures)
      : el('p', { className: 'muted' }, 'No triage model in force: incidents are not scored.'),
    may('admin') ? el('div', { className: 'actions' }, button, status) : null);
}
async function models() {
  const [data, scores, triage] = await Promise.all([api('GET', '/v1/precision'), api('GET', '/v1/models/scores'),
    api('GET', '/v1/triage').catch(() => null)]);
  const rows = data.detectors.map((d) => el('tr', {},
    el('td', {}, d.kind), el('td', {}, d.name),
    el('td', { className: 'num' }, d.adjudicated), el('td', { className: 'num' }, d.true_positive),
    el('td', { className: 'num' }, d.false_positive), el('td', { className: 'num' }, d.benign),
    el('td', { className: 'num' }, fixed(d.precision)), el('td', { className: 'barcell' }, bar(d.precision)),
    el('td', { className: 'num' }, fixed(d.false_positive_ratio)),
    el('td', { className: 'num' }, d.false_negative), el('td', { className: 'num' }, fixed(d.false_negative_rate))));
  const plots = scores.models.map((m) => el('div', { className: 'plots', dataset: { model: m.model } },
    el('h2', {}, m.model),
    el('p', { className: 'muted' }, m.count + ' scores, ' + time(m.first_ms) + ' to ' + time(m.last_ms)),
    el('div', { className: 'plotrow' },
      el('figure', {}, histogramPlot(m.histogram), el('figcaption', {}, 'Score distribution')),
      el('figure', {}, driftPlot(m.drift), el('figcaption', {}, 'Drift: PSI per time bucket against the first')))));
  show(el('h1', {}, 'Models and rules'),
    el('p', { className: 'muted' }, 'Adjudicated incidents in which each model or rule fired. Precision: true positives / adjudicated; ' +
      'false-positive ratio: (false positive + benign) / adjudicated; false-negative rate: missed detections / (true positives + missed).'),
    rows.length === 0 ? el('p', { className: 'muted' }, 'Nothing adjudicated yet.') :
      el('table', { id: 'models' },
        el('thead', {}, el('tr', {}, ...['Kind', 'Name', 'Adjudicated', 'True pos.', 'False pos.', 'Benign', 'Precision', '', 'FP ratio', 'Missed', 'FN rate']
          .map((h) => el('th', {}, h)))),
        el('tbody', {}, ...rows)),
    may('analyst') ? missedForm(() => route()) : null,
    triageSection(triage),
    el('h2', {}, 'Scores (the newest ' + scores.sample_limit + ' at most)'),
    el('p', { className: 'notice' }, 'From the scores of the findings agents sent (anomalous verdicts and decisions unless an agent ' +
      'sends every verdict). Drift compares each time bucket with the model\'s first one; agents\' own drift gauges against ' +
      'the training reference are not sent to the hub. Not shown: the model versions deployed on each agent.'),
    plots.length === 0 ? el('p', { className: 'muted' }, 'No scores yet.') : el('div', { id: 'score-plots' }, ...plots));
}

function policies() {
  show(el('h1', {}, 'Policies and rollout'),
    el('p', { className: 'notice', id: 'not-built' }, 'Not available in the web UI yet: the hub distributes signed ' +
      'policies and models to a canary group, then to all, but this page does not show them. Use ' +
      '`vigil hub push` and `vigil hub rollout start|promote|list` (docs/hub.md, "Fleet").'));
}

// ---- routing ----
const pages = {
  incidents: (rest) => (rest ? incident(rest) : incidents()),
  escalations: () => escalations(),
  agents: (rest) => (rest ? agent(decodeURIComponent(rest)) : agents()),
  models: () => models(),
  fleet: () => fleet(),
  policies: () => policies(),
};

async function route() {
  stopPolling();
  if (!session.token) { login(); return; }
  const path = location.hash.replace(/^#\/?/, '').split('?')[0];
  const [page, rest] = [path.split('/')[0] || 'incidents', path.split('/').slice(1).join('/')];
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  document.getElementById('who').textContent = session.user + ' (' + session.role + ')';
  for (const a of document.querySelectorAll('#nav a')) {
    a.hidden = a.dataset.role ? !may(a.dataset.role) : false;
    a.classList.toggle('current', a.dataset.page === page);
  }
  const render = pages[page];
  if (!render) { show(el('h1', {}, 'Not found'), el('p', {}, 'No page "' + page + '".')); return; }
  try {
    await render(rest);
  } catch (err) {
    if (err.status !== 401) show(el('h1', {}, page), errorBox(err));
  }
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('logout').addEventListener('click', () => {
    session.clear();
    location.hash = '#/login';
    login();
  });
  window.addEventListener('hashchange', route);
  route();
});
