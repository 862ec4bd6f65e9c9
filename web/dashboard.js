// The operators' dashboard: the live queue, incident detail with its timeline and the
// operator's actions, the map, and the KPIs. Everything comes from the JSON API; live
// updates are the incident events (GET /api/stream), after which the page reloads the
// part that changed.
import { api, whoami, logout, live, throttle, el, mmss, clock, kindName } from '/assets/common.js';
import { PlainMap } from '/assets/map.js';

let me = null;
let incidents = new Map();
let selected = null;
let staff = [];
// The residents' markers, from the last full map load (they change rarely).
let residentPoints = [];
let residentsLoadedAt = 0;
let map = null;
const target = () => (me ? me.target_secs : 60);
const canAct = () => me && (me.user.role === 'operator' || me.user.role === 'admin');

const STAGES = {
  awaiting_answer: 'Waiting for an answer', with_operator: 'Operator on the line', awaiting_staff: 'Waiting for home care',
  accepted: 'Staff accepted', en_route: 'Staff on the way', on_site: 'Staff on site', closed: 'Closed',
};

function stateOf(i) {
  if (!i.open) return 'done';
  return i.answered_at ? 'progress' : 'unanswered';
}

function ageSecs(i) {
  const start = Date.parse(i.received_at);
  const end = i.answered_at ? Date.parse(i.answered_at) : Date.now();
  return (end - start) / 1000;
}

// The share of the target used, as a bar's width.
const barWidth = (age) => `${Math.min(100, (age / target()) * 100)}%`;

// Set through the CSSOM: the pages allow no inline styles.
function bar(age) {
  const b = el('span');
  b.style.width = barWidth(age);
  return b;
}

function renderQueue() {
  const list = document.getElementById('queue');
  const order = { unanswered: 0, progress: 1, done: 2 };
  const items = [...incidents.values()].sort((a, b) => order[stateOf(a)] - order[stateOf(b)] || Date.parse(a.received_at) - Date.parse(b.received_at));
  list.replaceChildren(
    ...items.map((i) => {
      const s = stateOf(i);
      const age = ageSecs(i);
      return el(
        'li',
        { class: `incident state-${s}${selected === i.incident_id ? ' selected' : ''}`, 'data-id': i.incident_id, 'data-state': s, tabindex: 0, onclick: () => select(i.incident_id), onkeydown: (e) => e.key === 'Enter' && select(i.incident_id) },
        el('div', { class: 'incident-head' }, el('strong', {}, `#${i.incident_id} ${kindName(i.kind)}`), el('span', { class: 'age', 'data-received': i.received_at }, s === 'unanswered' ? mmss(age) : `answered in ${mmss(age)}`)),
        el('div', { class: 'small' }, [i.municipality, i.address || i.resident_id].filter(Boolean).join(' · ')),
        el('div', { class: 'small muted' }, STAGES[i.stage] || i.stage, i.priority && i.priority !== 'normal' ? ` · ${i.priority}` : ''),
        el('div', { class: 'target-bar' }, bar(age)),
      );
    }),
  );
  document.getElementById('queue-empty').hidden = items.length > 0;
}

// The age of unanswered incidents counts every second against the target.
setInterval(() => {
  for (const li of document.querySelectorAll('#queue .incident.state-unanswered')) {
    const i = incidents.get(Number(li.dataset.id));
    if (!i) continue;
    const age = ageSecs(i);
    li.querySelector('.age').textContent = mmss(age);
    li.querySelector('.target-bar span').style.width = barWidth(age);
    li.classList.toggle('over-target', age > target());
  }
}, 1000);

async function loadIncidents() {
  const r = await api('/api/incidents');
  incidents = new Map(r.incidents.map((i) => [i.incident_id, i]));
  renderQueue();
}

async function select(id) {
  selected = id;
  renderQueue();
  await loadDetail();
}

// A staff member's name from the directory (the map's staff list), or the id.
function nameOf(id) {
  const s = staff.find((x) => x.staff_id === id);
  return s && s.name ? s.name : id;
}

function describe(e) {
  const who = e.staff_id ? ` ${nameOf(e.staff_id)}` : e.operator_id ? ` ${e.operator_id}` : '';
  switch (e.type) {
    case 'raised': return `Alarm ${e.alarm_id} (${kindName(e.kind)}, ${e.priority}) from ${e.resident_id}, model ${e.model}`;
    case 'queued': return `Queued at ${e.centre_id}`;
    case 'dequeued': return `Left the queue at ${e.centre_id}`;
    case 'offered': return `Offered to${who}${e.broadcast ? ' (everyone on duty)' : ''}, ETA ${mmss(e.eta_secs)}`;
    case 'revoked': return `Offer to${who} withdrawn: ${e.reason.replaceAll('_', ' ')}`;
    case 'broadcast': return 'Offered to everyone on duty';
    case 'forwarded_to_backup': return `Forwarded to the backup ${e.backup_centre || e.backup_team}`;
    case 'alert': return `Alert: nobody has it after ${mmss(e.waiting_secs)}`;
    case 'assigned_by_operator': return `Assigned by ${e.operator_id} to ${nameOf(e.staff_id)}`;
    case 'escalated_by_operator': return `Escalated by ${e.operator_id}`;
    case 'note_added': return `Note by ${e.by}: ${e.note}`;
    case 'answered': return `Answered by ${e.by.staff_id ? nameOf(e.by.staff_id) : e.by.operator_id} in ${mmss(e.answer_secs)}`;
    case 'resolved_by_centre': return `Resolved on the phone by ${e.operator_id}`;
    case 'forwarded_to_home_care': return `Forwarded to home care by ${e.operator_id}`;
    case 'accepted': return `Accepted by${who}`;
    case 'en_route': return `${nameOf(e.staff_id)} is on the way`;
    case 'on_site': return `${nameOf(e.staff_id)} on site, ${mmss(e.since_raised_secs)} after the alarm`;
    case 'closed': return `Closed: ${(e.outcome || '').replaceAll('_', ' ')}${e.note ? ` (${e.note})` : ''}`;
    case 'attached': return `Another alarm joined: ${e.alarm_id}`;
    case 'rejected': return `Refused: ${e.detail}`;
    default: return e.type;
  }
}

async function loadDetail() {
  const box = document.getElementById('detail');
  if (selected === null) return;
  let r;
  try {
    r = await api(`/api/incidents/${selected}`);
  } catch (err) {
    box.replaceChildren(el('p', { class: 'error' }, err.message));
    return;
  }
  const i = r.incident;
  const timeline = [
    ...r.events.map((e) => ({ at: e.at, text: describe(e), cls: `ev-${e.type}` })),
    ...r.audit.map((a) => ({ at: a.at, text: `${a.username} (${a.role}): ${a.action.replaceAll('_', ' ')}${a.detail ? ` "${a.detail}"` : ''}${a.outcome === 'ok' ? '' : ` — refused: ${a.outcome.replaceAll('_', ' ')}`}`, cls: 'ev-audit' })),
  ].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  const status = el('p', { class: 'action-status', role: 'status' });
  const actions = i.open && canAct() ? actionPanel(i, status) : null;
  box.replaceChildren(...[
    el('h2', {}, `#${i.incident_id} ${kindName(i.kind)}`, el('span', { class: `badge state-${stateOf(i)}` }, STAGES[i.stage] || i.stage)),
    el('dl', { class: 'facts' },
      el('dt', {}, 'Resident'), el('dd', {}, `${i.resident_id}${i.address ? ', ' + i.address : ''}`),
      i.notes ? [el('dt', {}, 'Notes'), el('dd', {}, i.notes)] : null,
      i.text ? [el('dt', {}, 'Alarm text'), el('dd', {}, i.text)] : null,
      el('dt', {}, 'Municipality'), el('dd', {}, `${i.municipality} (${(i.model || '').replaceAll('_', ' ')})`),
      el('dt', {}, 'Received'), el('dd', {}, clock(i.received_at)),
      i.answered_at ? [el('dt', {}, 'Answered'), el('dd', {}, `${clock(i.answered_at)} (${mmss(ageSecs(i))})`)] : null,
      i.live_offers && i.live_offers.length ? [el('dt', {}, 'Offered to'), el('dd', {}, i.live_offers.map(nameOf).join(', '))] : null,
      i.assigned ? [el('dt', {}, 'Staff'), el('dd', {}, nameOf(i.assigned))] : null,
    ),
    actions,
    status,
    el('h3', {}, 'Timeline'),
    el('ol', { class: 'timeline', id: 'timeline' }, ...timeline.map((t) => el('li', { class: t.cls }, el('time', {}, clock(t.at)), ' ', t.text))),
  ].filter(Boolean));
}

function actionPanel(i, status) {
  const act = async (body, label) => {
    status.textContent = `${label}…`;
    status.className = 'action-status';
    try {
      await api(`/api/incidents/${i.incident_id}/actions`, { method: 'POST', body });
      status.textContent = `${label}: done`;
    } catch (err) {
      status.textContent = `${label}: ${err.message}`;
      status.className = 'action-status error';
    }
    await Promise.all([loadIncidents(), loadDetail()]);
  };
  const note = el('textarea', { id: 'note-text', rows: 2, placeholder: 'Note (for the record, or with Resolve)' });
  const pick = el('select', { id: 'assign-staff' }, ...staff.filter((s) => s.on_duty).map((s) => el('option', { value: s.staff_id }, `${s.name || s.staff_id}${s.busy ? ' (busy)' : ''}`)));
  const b = (id, label, fn, cls, enabled = true) => el('button', { type: 'button', id, class: cls, onclick: fn, disabled: !enabled, title: enabled ? null : 'Not in this state' }, label);
  // What the engine would take in this state (it has the last word: a refusal shows its reason).
  const queued = Boolean(i.queued_at) && i.stage === 'awaiting_answer';
  const withOperator = i.stage === 'with_operator';
  const ladder = i.stage === 'awaiting_staff' || (i.stage === 'awaiting_answer' && (!i.queued_at || i.live_offers.length > 0));
  return el('div', { class: 'actions' },
    el('div', { class: 'button-row' },
      b('act-answer', 'Answer', () => act({ action: 'answer' }, 'Answer'), 'primary', queued),
      b('act-resolve', 'Resolve', () => act({ action: 'resolve', note: note.value || null }, 'Resolve'), '', withOperator),
      b('act-forward', 'Forward to home care', () => act({ action: 'forward_to_home_care' }, 'Forward'), '', withOperator),
      b('act-escalate', 'Escalate to all', () => act({ action: 'escalate' }, 'Escalate'), 'warn', ladder),
    ),
    el('div', { class: 'button-row' }, pick, b('act-assign', 'Assign', () => pick.value && act({ action: 'assign', staff_id: pick.value }, 'Assign'), '', ladder)),
    el('div', { class: 'button-row' }, note, b('act-note', 'Add note', () => note.value.trim() && act({ action: 'note', note: note.value }, 'Note'))),
  );
}

// Staff and incidents at every load; the residents (the bulk of a large directory)
// only every five minutes.
async function loadMap() {
  const full = Date.now() - residentsLoadedAt > 300000;
  const r = await api(full ? '/api/map' : '/api/map?residents=false');
  if (r.residents) {
    residentPoints = r.residents.map((x) => ({ lat: x.position.lat, lon: x.position.lon, cls: 'resident', title: `${x.resident_id} ${x.address}` }));
    residentsLoadedAt = Date.now();
  }
  staff = r.staff;
  const points = [
    ...residentPoints,
    ...r.staff.filter((x) => x.position).map((x) => ({ lat: x.position.lat, lon: x.position.lon, cls: `staff${x.on_duty ? '' : ' off'}${x.busy ? ' busy' : ''}`, title: `${x.name || x.staff_id}${x.on_duty ? ' (on duty)' : ' (off duty)'}` })),
    ...r.incidents.filter((x) => x.position).map((x) => ({ lat: x.position.lat, lon: x.position.lon, cls: `incident state-${stateOf(x)}`, id: x.incident_id, label: String(x.incident_id), title: `#${x.incident_id} ${kindName(x.kind)}`, onclick: () => select(x.incident_id) })),
  ];
  map.setPoints(points);
}

function pct(row) {
  return row.share === null ? '–' : `${(row.share * 100).toFixed(1)} %`;
}

async function loadKpis() {
  const r = await api('/api/kpis');
  const total = (p) => {
    const rows = p.municipalities;
    const n = rows.reduce((s, x) => s + x.answered, 0), w = rows.reduce((s, x) => s + x.within_target, 0);
    return { share: n ? w / n : null, n };
  };
  for (const p of r.periods) {
    const t = total(p);
    const node = document.getElementById(`kpi-${p.period}`);
    node.textContent = pct(t);
    node.title = `${t.n} answered since ${clock(p.since)}`;
    node.classList.toggle('bad', t.share !== null && t.share < 0.95);
  }
  document.getElementById('kpi-open').textContent = r.open_incidents;
  document.getElementById('kpi-staff').textContent = r.staff_on_duty;
  const [today, week, month] = r.periods;
  const rows = [
    ...today.municipalities.map((m, k) => [m.municipality, m.model, m, week.municipalities[k], month.municipalities[k]]),
    ...today.models.map((m, k) => [`all (${m.model.replaceAll('_', ' ')})`, m.model, m, week.models[k], month.models[k]]),
  ];
  document.querySelector('#kpi-table tbody').replaceChildren(
    ...rows.map(([name, model, a, b, c]) => el('tr', {}, el('td', {}, name), el('td', {}, model.replaceAll('_', ' ')), ...[a, b, c].map((x) => el('td', { title: `${x.within_target} of ${x.answered}` }, pct(x))))),
  );
}

async function main() {
  me = await whoami();
  if (me.user.role === 'staff') { location.href = '/app'; return; }
  document.getElementById('who').textContent = `${me.user.username} (${me.user.role}${me.user.centre ? ', ' + me.user.centre : ''})`;
  document.getElementById('scope').textContent = me.municipalities.map((m) => m.name).join(', ');
  document.getElementById('logout').addEventListener('click', logout);
  map = new PlainMap(document.getElementById('map'), { tiles: me.tiles, attribution: me.tiles_attribution });
  await Promise.all([loadIncidents(), loadMap(), loadKpis()]);
  const reload = throttle(() => Promise.all([loadIncidents(), selected !== null ? loadDetail() : null]), 150);
  const reloadMap = throttle(loadMap, 1000);
  const reloadKpis = throttle(loadKpis, 1000);
  const state = document.getElementById('live-state');
  const es = live('/api/stream', {
    open: () => { state.className = 'live-state on'; reload(); },
    incident: (e) => {
      reload();
      reloadMap();
      if (e && (e.type === 'answered' || e.type === 'raised' || e.type === 'closed')) reloadKpis();
    },
    lagged: () => { reload(); reloadMap(); },
  });
  es.onerror = () => { state.className = 'live-state off'; };
  setInterval(loadMap, 10000);
  setInterval(loadKpis, 30000);
}

main().catch((e) => { document.getElementById('detail').replaceChildren(el('p', { class: 'error' }, e.message)); });
