// The pages' reload throttle (web/common.js), in Node: under a steady stream of events
// faster than its interval it still runs (a plain debounce never did, and a busy
// dashboard froze), never runs twice at once, and runs once more after the last event.
import { throttle } from '../../web/common.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let running = 0;
let overlapped = false;
const starts = [];
const load = async () => {
  running += 1;
  if (running > 1) overlapped = true;
  starts.push(performance.now());
  await sleep(30); // a request
  running -= 1;
};
const reload = throttle(load, 100);

const begin = performance.now();
let lastCall = 0;
while (performance.now() - begin < 1500) {
  reload();
  lastCall = performance.now();
  await sleep(20); // events every 20 ms, five times faster than the interval
}
await sleep(400);

const fail = (why) => { console.error(`FAIL: ${why} (starts at ${starts.map((t) => Math.round(t - begin)).join(', ')} ms)`); process.exit(1); };
if (overlapped) fail('two loads ran at once');
if (starts.length < 4) fail(`only ${starts.length} loads during 1.5 s of events`);
if (starts.length > 16) fail(`${starts.length} loads: not throttled`);
if (starts[starts.length - 1] < lastCall) fail('no load after the last event');
console.log(`PASS: ${starts.length} loads for ${Math.round((lastCall - begin) / 20) + 1} events`);
