// The pages' translations (web/i18n.js), in Node: every text the pages mark for
// translation (t('…') and N_('…') in the scripts, data-i18n and data-i18n-attr in the
// pages) has its Bokmål, with the same {placeholders}; the dictionary holds nothing
// the pages no longer use; every error code of docs/api.md that a person can meet
// has a Bokmål text; the language is chosen as documented.
// `node i18n.mjs --keys` lists the texts instead (for writing the dictionary).
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NB, NB_ERRORS, chooseLang } from '../../web/i18n.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const web = join(root, 'web');
const keys = new Map(); // text → where
const add = (text, where) => { if (!keys.has(text)) keys.set(text, where); };
const unescape = (s) => s.replace(/\\(.)/g, '$1');

for (const f of readdirSync(web)) {
  const src = readFileSync(join(web, f), 'utf8');
  if (f.endsWith('.js')) {
    for (const m of src.matchAll(/\b(?:t|N_)\('((?:[^'\\]|\\.)*)'/g)) add(unescape(m[1]), f);
  } else if (f.endsWith('.html')) {
    for (const m of src.matchAll(/<\w+\b([^>]*)>([^<]*)(?=<)/g)) {
      if (/\sdata-i18n(?=\s|$)/.test(m[1])) add(m[2].trim().replace(/\s+/g, ' '), f);
    }
    for (const m of src.matchAll(/<\w+\b([^>]*)\sdata-i18n-attr="([^"]+)"/g)) {
      for (const a of m[2].split(',')) {
        const v = m[1].match(new RegExp(`\\s${a}="([^"]*)"`));
        if (!v) throw new Error(`${f}: data-i18n-attr names ${a}, which the element lacks`);
        add(v[1], f);
      }
    }
  }
}

if (process.argv.includes('--keys')) {
  for (const [k, f] of keys) console.log(`${f}\t${k}`);
  process.exit(0);
}

const problems = [];
const vars = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort().join(',');
for (const [k, f] of keys) {
  if (k === '') problems.push(`${f}: an empty text is marked for translation`);
  else if (!(k in NB)) problems.push(`${f}: no Bokmål for "${k}"`);
  else if (vars(NB[k]) !== vars(k)) problems.push(`"${k}": the Bokmål has {${vars(NB[k])}}, the English {${vars(k)}}`);
}
for (const k of Object.keys(NB)) if (!keys.has(k)) problems.push(`the dictionary has "${k}", which no page uses`);

// The error codes of docs/api.md, but for the MQTT contract's codes on staff messages
// (the app never sends such a message), the engine's refusals of what does not exist
// (the pages name only what they were given), `internal` (a fault: the log says more),
// the router's `not_found`, `method_not_allowed` and `unsupported_media_type` (the
// pages call only what is there, with JSON), and the device receivers' refusals (on the
// refused list, named by dashboard.js's REFUSALS; never an answer to a page).
const api = readFileSync(join(root, 'docs/api.md'), 'utf8');
const table = api.slice(api.indexOf('## Errors'), api.indexOf('\n\n', api.indexOf('| status |')));
const machine = new Set([
  'bad_request', 'malformed_json', 'invalid_field', 'payload_too_large', 'not_utf8', 'bad_topic', 'unknown_kind', 'absurd_timestamp', 'unreadable',
  'unknown_staff', 'unknown_resident', 'unknown_centre', 'unknown_municipality', 'wrong_municipality', 'internal', 'not_found', 'method_not_allowed', 'unsupported_media_type',
  'bad_frame', 'stale_timestamp', 'unsupported', 'unknown_device', 'wrong_key', 'flooding',
]);
const codes = new Set([...table.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]).filter((c) => !machine.has(c)));
if (codes.size < 15) problems.push(`only ${codes.size} codes read from docs/api.md's error table`);
for (const c of codes) if (!(c in NB_ERRORS)) problems.push(`no Bokmål for the error code ${c}`);
for (const c of Object.keys(NB_ERRORS)) if (!codes.has(c)) problems.push(`NB_ERRORS has ${c}, which docs/api.md does not list`);

for (const [stored, preferred, want] of [
  [null, ['nb-NO', 'en'], 'nb'], [null, ['nn'], 'nb'], [null, ['no'], 'nb'], [null, ['en-US', 'nb'], 'en'],
  [null, ['de-DE', 'en-GB'], 'en'], [null, ['de-DE'], 'nb'], [null, [], 'nb'], ['en', ['nb-NO'], 'en'], ['nb', ['en-US'], 'nb'], ['xx', ['en'], 'en'],
]) {
  const got = chooseLang(stored, preferred);
  if (got !== want) problems.push(`chooseLang(${stored}, ${preferred}) is ${got}, not ${want}`);
}

if (problems.length) {
  console.log(`FAIL\n${problems.join('\n')}`);
  process.exit(1);
}
console.log(`PASS: ${keys.size} texts, ${codes.size} error codes`);
